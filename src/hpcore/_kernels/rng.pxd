# Counter-based random streams for nogil kernels.
#
# A stream is keyed by (seed, stream index): xoshiro256** seeded through splitmix64.
# Kernels give each work item (an individual, a start point, a row) its own stream,
# so results do not depend on the thread count or the schedule.
from libc.math cimport sqrt, log, cos, M_PI
from libc.stdint cimport uint64_t

ctypedef struct Rng:
    uint64_t s0
    uint64_t s1
    uint64_t s2
    uint64_t s3


cdef inline uint64_t _splitmix64(uint64_t* x) noexcept nogil:
    x[0] += <uint64_t>0x9E3779B97F4A7C15ULL
    cdef uint64_t z = x[0]
    z = (z ^ (z >> 30)) * <uint64_t>0xBF58476D1CE4E5B9ULL
    z = (z ^ (z >> 27)) * <uint64_t>0x94D049BB133111EBULL
    return z ^ (z >> 31)


cdef inline uint64_t _rotl(uint64_t x, int k) noexcept nogil:
    return (x << k) | (x >> (64 - k))


cdef inline void rng_init(Rng* r, uint64_t seed, uint64_t stream) noexcept nogil:
    """Seed ``r`` for stream ``stream`` of ``seed`` (independent streams by hashing)."""
    cdef uint64_t x = seed
    cdef uint64_t h = _splitmix64(&x)
    x = h ^ (stream * <uint64_t>0xD1B54A32D192ED03ULL)
    h = _splitmix64(&x)
    x = h
    r.s0 = _splitmix64(&x)
    r.s1 = _splitmix64(&x)
    r.s2 = _splitmix64(&x)
    r.s3 = _splitmix64(&x)


cdef inline uint64_t rng_next(Rng* r) noexcept nogil:
    """xoshiro256** step."""
    cdef uint64_t result = _rotl(r.s1 * 5, 7) * 9
    cdef uint64_t t = r.s1 << 17
    r.s2 ^= r.s0
    r.s3 ^= r.s1
    r.s1 ^= r.s2
    r.s0 ^= r.s3
    r.s2 ^= t
    r.s3 = _rotl(r.s3, 45)
    return result


cdef inline double rng_uniform(Rng* r) noexcept nogil:
    """Uniform double in [0, 1) with 53 random bits."""
    return (rng_next(r) >> 11) * (1.0 / 9007199254740992.0)


cdef inline double rng_normal(Rng* r) noexcept nogil:
    """Standard normal draw (Box-Muller, one value per two uniforms)."""
    cdef double u1 = 1.0 - rng_uniform(r)   # (0, 1]
    cdef double u2 = rng_uniform(r)
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2)


cdef inline Py_ssize_t rng_integer(Rng* r, Py_ssize_t n) noexcept nogil:
    """Uniform integer in [0, n) for n >= 1 (multiply-shift; bias below 2**-40 for n < 2**24)."""
    cdef Py_ssize_t k = <Py_ssize_t>(rng_uniform(r) * n)
    if k >= n:
        k = n - 1
    return k
