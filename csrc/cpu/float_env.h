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
#define PYOPTK_HAVE_FLUSH_WORD 1
#elif defined(__aarch64__)
#define PYOPTK_HAVE_FLUSH_WORD 1
#endif

namespace pyoptk {

#ifdef PYOPTK_HAVE_FLUSH_WORD
// The control word holding the flushing bits: x86's MXCSR (FTZ bit 15, DAZ bit 6), aarch64's
// FPCR (FZ bit 24: flush single and double inputs and results; FZ16 bit 19: half precision).
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

// pyoptk.set_flush_denormal: on, every step flushes whatever the caller's mode (set from Python
// while another thread's step, GIL released, reads it).
inline std::atomic<bool> g_flush_denormal{false};

// Whether this CPU has a flushing mode pyoptk can set (x86's MXCSR, aarch64's FPCR).
constexpr bool kCanFlushDenormal =
#ifdef PYOPTK_HAVE_FLUSH_WORD
    true;
#else
    false;
#endif

// This thread's flushing bits now (0 where there is no control word for them).
inline unsigned thread_flush_bits() {
#ifdef PYOPTK_HAVE_FLUSH_WORD
  return static_cast<unsigned>(read_float_control() & kFlushBits);  // both masks fit 32 bits
#else
  return 0;
#endif
}

class CallerFloatEnv {
 public:
  // Read on the calling thread, before the step.
  CallerFloatEnv() {
#ifdef PYOPTK_HAVE_FLUSH_WORD
    bits_ = g_flush_denormal.load(std::memory_order_relaxed) ? kFlushBits : thread_flush_bits();
#endif
  }

  // In each thread that runs part of the step (the caller too), for its whole length.
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
