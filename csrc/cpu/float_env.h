// The flushing mode a step computes in: the calling thread's flush-to-zero / denormals-are-zero
// bits (torch.set_flush_denormal sets them), or both when pyoptk's flush mode is on; every thread
// of the step takes that mode for the step and gets its own back after.
//
// A worker thread inherits the FP control word of the thread that created it, once, when the
// OpenMP pool starts; a caller that later turns flushing on or off (torch.set_flush_denormal)
// would then see workers computing in another mode than itself, and an N-thread step giving
// other bits than a 1-thread one. So every parallel region copies the caller's bits into each
// worker for the region's length, and gives the worker its own bits back after.
#pragma once
#include <atomic>

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#include <xmmintrin.h>
#define PYOPTK_HAVE_MXCSR 1
#endif

namespace pyoptk {

// pyoptk.set_flush_denormal: on, every step flushes whatever the caller's mode (set from Python
// while another thread's step, GIL released, reads it).
inline std::atomic<bool> g_flush_denormal{false};

// Whether this CPU has a flushing mode pyoptk can set (x86's MXCSR; ARM's FPCR is not wired yet).
constexpr bool kCanFlushDenormal =
#ifdef PYOPTK_HAVE_MXCSR
    true;
#else
    false;
#endif

// This thread's FTZ/DAZ bits now (0 where there is no MXCSR).
inline unsigned thread_flush_bits() {
#ifdef PYOPTK_HAVE_MXCSR
  return _mm_getcsr() & 0x8040u;
#else
  return 0;
#endif
}

class CallerFloatEnv {
 public:
  // Read on the calling thread, before the step.
  CallerFloatEnv() {
#ifdef PYOPTK_HAVE_MXCSR
    bits_ = g_flush_denormal.load(std::memory_order_relaxed) ? kFlushBits : _mm_getcsr() & kFlushBits;
#endif
  }

  // In each thread that runs part of the step (the caller too), for its whole length.
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
