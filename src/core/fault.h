/* Fault injection, compiled in only by `make FAULT=1` (-DCZ_FAULT_INJECTION=1):
 * with CATZILLA_FAULT_EVERY=N in the environment, every Nth catzilla_* arena
 * allocation (alloc, growing realloc, aligned static alloc) of an armed thread
 * returns NULL.  Counted per thread; N is read once per process; 0 or unset
 * never fails.  Start-up is never affected: a thread fails allocations only
 * after it armed itself (the worker loop does, before its first turn).
 * Normal builds contain none of this. */
#ifndef CZ_CORE_FAULT_H
#define CZ_CORE_FAULT_H

#if CZ_FAULT_INJECTION
/* Arm the calling thread with CATZILLA_FAULT_EVERY (resets its count). */
void catzilla_memory_fault_arm(void);
/* Arm the calling thread with an explicit N (fuzzers, tests); 0 disarms. */
void catzilla_memory_fault_arm_every(unsigned long every);
#endif

#endif
