// The list of ops. Adding an algorithm = one header in ops/ + one line here.
#pragma once

#include "pyoptk/ops/adadelta.h"
#include "pyoptk/ops/adafactor.h"
#include "pyoptk/ops/adagrad.h"
#include "pyoptk/ops/adam.h"
#include "pyoptk/ops/adamax.h"
#include "pyoptk/ops/ademamix.h"
#include "pyoptk/ops/adan.h"
#include "pyoptk/ops/adopt.h"
#include "pyoptk/ops/asgd.h"
#include "pyoptk/ops/average.h"
#include "pyoptk/ops/grad_clip.h"
#include "pyoptk/ops/lamb.h"
#include "pyoptk/ops/lion.h"
#include "pyoptk/ops/muon.h"
#include "pyoptk/ops/nadam.h"
#include "pyoptk/ops/radam.h"
#include "pyoptk/ops/rmsprop.h"
#include "pyoptk/ops/rprop.h"
#include "pyoptk/ops/schedule_free.h"
#include "pyoptk/ops/sgd.h"
#include "pyoptk/ops/sparse_adam.h"
#include "pyoptk/ops/stream.h"

// X(Type) for every op, in a fixed order: the order defines the op ids.
#define PYOPTK_FOR_EACH_OP(X) \
  X(Stream)                   \
  X(Sgd)                      \
  X(Adam)                     \
  X(RmsProp)                  \
  X(Adagrad)                  \
  X(Adamax)                   \
  X(NAdam)                    \
  X(RAdam)                    \
  X(Adadelta)                 \
  X(Rprop)                    \
  X(Asgd)                     \
  X(SparseAdam)               \
  X(Adafactor)                \
  X(MuonMomentum)             \
  X(DecayedAdd)               \
  X(Average)                  \
  X(GradClip)                 \
  X(Lion)                     \
  X(Adan)                     \
  X(Adopt)                    \
  X(AdEMAMix)                 \
  X(ScheduleFree)             \
  X(LambDirection)            \
  X(Lars)

namespace pyoptk {

enum OpId : int {
#define PYOPTK_OP_ID(T) kOp##T,
  PYOPTK_FOR_EACH_OP(PYOPTK_OP_ID)
#undef PYOPTK_OP_ID
  kNumOps
};

}  // namespace pyoptk
