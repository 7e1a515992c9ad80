/* Minimises sum((w - 3)^2) / 2 over a float array with pyoptk's fused Adam, from C, through the C
 * API: the table is fetched once with the GIL held, then every step runs without it.
 * Build: examples/c_embed/CMakeLists.txt (-DPYOPTK_INCLUDE=$(python -c "import pyoptk; print(pyoptk.get_include())")). */
#include <Python.h>
#include <pyoptk/capi.h>
#include <stdio.h>

#define N 1000

int main(void) {
  Py_Initialize();
  const PyoptkApi* api = pyoptk_import();      /* NULL + ImportError if pyoptk is missing or of another ABI */
  if (api == NULL) { PyErr_Print(); return 1; }
  PyThreadState* gil = PyEval_SaveThread();   /* no Python from here on */

  static float w[N], g[N], m[N], v[N];         /* caller-owned param, grad and Adam's two states */
  int adam, mode;
  double hyper[5] = {0.1, 0.9, 0.999, 1e-8, 0.0};   /* lr, beta1, beta2, eps, weight_decay */
  double coeffs[8];
  void* states[3] = {m, v, NULL};               /* exp_avg, exp_avg_sq, max_exp_avg_sq (amsgrad only) */
  if (api->find_op("adam", &adam) || api->make_mode(adam, "", &mode)) goto fail;
  for (int64_t t = 1; t <= 200; ++t) {
    for (int i = 0; i < N; ++i) g[i] = w[i] - 3.0f;                       /* the grad of the loss */
    if (api->step_coeffs(adam, hyper, 5, t, NULL, 0, coeffs, 8) ||
        api->step_span(adam, mode, PYOPTK_FLOAT32, coeffs, 8, w, g, states, 3, N, 1)) goto fail;
  }
  PyEval_RestoreThread(gil);
  printf("w[0] = %.4f after 200 steps\n", w[0]);
  return Py_FinalizeEx() < 0 ? 1 : 0;
fail:
  fprintf(stderr, "pyoptk: %s\n", api->last_error());
  return 1;
}
