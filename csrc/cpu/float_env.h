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
#define PYOPTK_HAVE_MXCSR 1
#endif

namespace pyoptk {

class CallerFloatEnv {
 public:
  // Read on the calling thread, before the parallel region.
  CallerFloatEnv() {
#ifdef PYOPTK_HAVE_MXCSR
    bits_ = _mm_getcsr() & kFlushBits;
#endif
  }

  // In each thread of the region, for its whole length.
  class Adopt {
   public:
    explicit Adopt(const CallerFloatEnv& caller) {
#ifdef PYOPTK_HAVE_MXCSR
      saved_ = _mm_getcsr();
      if ((saved_ & kFlushBits) != caller.bits_) _mm_setcsr((saved_ & ~kFlushBits) | caller.bits_);
#else
      (void)caller;
#endif
    }
    ~Adopt() {
#ifdef PYOPTK_HAVE_MXCSR
      if (_mm_getcsr() != saved_) _mm_setcsr(saved_);
#endif
    }
    Adopt(const Adopt&) = delete;
    Adopt& operator=(const Adopt&) = delete;

   private:
    unsigned saved_ = 0;
  };

 private:
  static constexpr unsigned kFlushBits = 0x8040;  // MXCSR's FTZ (bit 15) and DAZ (bit 6)
  unsigned bits_ = 0;
};

}  // namespace pyoptk
