// The calling thread's flush-to-zero / denormals-are-zero bits, carried into OpenMP workers.
//
// A worker thread inherits the FP control word of the thread that created it, once, when the
// OpenMP pool starts; a caller that later turns flushing on or off (torch.set_flush_denormal)
// would then see workers computing in another mode than itself, and an N-thread step giving
// other bits than a 1-thread one. So every parallel region copies the caller's bits into each
// worker for the region's length, and gives the worker its own bits back after.
#pragma once

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#include <xmmintrin.h>
#define PYOPTK_HAVE_FLUSH_WORD 1
#elif defined(__aarch64__)
#define PYOPTK_HAVE_FLUSH_WORD 1
#endif

namespace pyoptk {

#ifdef PYOPTK_HAVE_FLUSH_WORD
// The control word holding the flushing bits: x86's MXCSR (FTZ bit 15, DAZ bit 6), aarch64's
// FPCR (FZ bit 24: flush single and double; FZ16 bit 19: half precision).
#if defined(__aarch64__)
inline unsigned long long read_float_control() {
  unsigned long long w;
  __asm__ __volatile__("mrs %0, fpcr" : "=r"(w));
  return w;
}
inline void write_float_control(unsigned long long w) { __asm__ __volatile__("msr fpcr, %0" : : "r"(w)); }
constexpr unsigned long long kFlushBits = (1ull << 24) | (1ull << 19);
#else
inline unsigned long long read_float_control() { return _mm_getcsr(); }
inline void write_float_control(unsigned long long w) { _mm_setcsr(static_cast<unsigned>(w)); }
constexpr unsigned long long kFlushBits = 0x8040;
#endif
#endif

class CallerFloatEnv {
 public:
  // Read on the calling thread, before the parallel region.
  CallerFloatEnv() {
#ifdef PYOPTK_HAVE_FLUSH_WORD
    bits_ = read_float_control() & kFlushBits;
#endif
  }

  // In each thread of the region, for its whole length.
  class Adopt {
   public:
    explicit Adopt(const CallerFloatEnv& caller) {
#ifdef PYOPTK_HAVE_FLUSH_WORD
      saved_ = read_float_control();
      if ((saved_ & kFlushBits) != caller.bits_) write_float_control((saved_ & ~kFlushBits) | caller.bits_);
#else
      (void)caller;
#endif
    }
    ~Adopt() {
#ifdef PYOPTK_HAVE_FLUSH_WORD
      if (read_float_control() != saved_) write_float_control(saved_);
#endif
    }
    Adopt(const Adopt&) = delete;
    Adopt& operator=(const Adopt&) = delete;

   private:
    unsigned long long saved_ = 0;
  };

 private:
  unsigned long long bits_ = 0;
};

}  // namespace pyoptk
