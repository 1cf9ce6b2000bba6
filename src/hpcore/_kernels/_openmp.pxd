# OpenMP shim: every kernel cimports from here so that it builds with or without OpenMP.
cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define HP_OPENMP_ENABLED 1
    #else
    #define HP_OPENMP_ENABLED 0
    static inline int omp_get_max_threads(void) { return 1; }
    static inline int omp_get_thread_num(void) { return 0; }
    static inline void omp_set_num_threads(int n) { (void)n; }
    #endif
    """
    bint HP_OPENMP_ENABLED
    int omp_get_max_threads() noexcept nogil
    int omp_get_thread_num() noexcept nogil
    void omp_set_num_threads(int n) noexcept nogil

cpdef int effective_n_threads(object n_threads=*) except -1
