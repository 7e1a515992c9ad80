// Drives pyoptk through its C API only: the table comes from the capsule (the one Python call),
// then every step runs with the GIL released, over memory this program owns.
//
//   capi_test errors               bad calls give error codes and messages, and write nothing
//   capi_test run CASES DIR        runs each case of CASES on DIR/<id>.in, writes DIR/<id>.out
//   capi_test bench COUNT STEPS    µs per Adam step (coefficients + one step_spans call) over COUNT
//                                  float32 arrays of 8 elements, on one thread (bench/step_overhead.py)
//
// A case line: id op flags dtype n steps threads spans first_step hyper...
//   flags: comma-separated flag names or "-"; dtype: 0 float32, 1 float64; first_step: 1 = add the
//   "first_step" flag on step 1 (SGD's momentum buffer). <id>.in holds the param, then `steps`
//   grads, then the initial value of each state the mode uses (op order), each n elements of the
//   dtype; <id>.out the final param, the states, then the scalar state (doubles).
#include <Python.h>

#include <pyoptk/capi.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace {

const PyoptkApi* api = nullptr;
int failures = 0;

void expect(bool ok, const std::string& what) {
  if (!ok) {
    ++failures;
    std::cerr << "FAILED: " << what << " (last_error: '" << api->last_error() << "')\n";
  }
}

// A call that must fail with `code` and a message containing `needle`.
void expect_error(int status, int code, const char* needle, const std::string& what) {
  expect(status == code, what + ": status " + std::to_string(status) + ", expected " + std::to_string(code));
  expect(std::strstr(api->last_error(), needle) != nullptr, what + ": message lacks '" + needle + "'");
}

int op_id(const char* name) {
  int op = -1;
  if (api->find_op(name, &op) != PYOPTK_OK) {
    std::cerr << api->last_error() << "\n";
    std::exit(2);
  }
  return op;
}

int errors() {
  int op = -1, mode = -1;
  expect_error(api->find_op("adamm", &op), PYOPTK_ERR_UNKNOWN, "unknown op 'adamm'", "unknown op name");
  expect(op == -1, "a refused find_op leaves op alone");
  expect_error(api->find_op(nullptr, &op), PYOPTK_ERR_ARGUMENT, "NULL", "null name");
  const int adam = op_id("adam"), sgd = op_id("sgd"), nadam = op_id("nadam"), stream = op_id("stream");
  PyoptkOpInfo info;
  expect_error(api->op_info(9999, &info), PYOPTK_ERR_UNKNOWN, "op id 9999", "unknown op id");
  expect_error(api->op_info(adam, nullptr), PYOPTK_ERR_ARGUMENT, "NULL", "null info");
  expect(api->op_info(adam, &info) == PYOPTK_OK && std::strcmp(info.name, "adam") == 0 && info.num_hypers == 5 &&
             info.num_states == 3 && info.num_coeffs == 8 && info.reads_grad == 1,
         "adam's op_info");
  expect(std::string(api->last_error()).empty(), "a successful call clears the message");

  expect_error(api->make_mode(adam, "amsgrad,bogus", &mode), PYOPTK_ERR_UNKNOWN, "no flag 'bogus'", "unknown flag");
  expect_error(api->make_mode(adam, "weight_decay,decoupled_weight_decay", &mode), PYOPTK_ERR_UNSUPPORTED,
               "not a combination", "an invalid flag combination");
  expect_error(api->make_mode(sgd, "nesterov", &mode), PYOPTK_ERR_UNSUPPORTED, "not a combination",
               "nesterov without momentum");
  expect(mode == -1, "a refused make_mode leaves mode alone");
  expect(api->make_mode(adam, "", &mode) == PYOPTK_OK && mode == 0, "no flags");
  expect(api->make_mode(adam, nullptr, &mode) == PYOPTK_OK && mode == 0, "NULL flags");

  const double hyper[5] = {1e-3, 0.9, 0.999, 1e-8, 0.0};
  double coeffs[8] = {0}, scalars[1] = {1.0};
  expect_error(api->step_coeffs(adam, hyper, 3, 1, nullptr, 0, coeffs, 8), PYOPTK_ERR_ARGUMENT,
               "hyper has 3 values, expected 5", "hyper size mismatch");
  expect_error(api->step_coeffs(adam, hyper, 5, 1, nullptr, 0, coeffs, 7), PYOPTK_ERR_ARGUMENT,
               "coeffs has 7 values, expected 8", "coeffs size mismatch");
  expect_error(api->step_coeffs(adam, nullptr, 5, 1, nullptr, 0, coeffs, 8), PYOPTK_ERR_ARGUMENT, "hyper is NULL",
               "null hyper");
  expect_error(api->step_coeffs(adam, hyper, 5, 0, nullptr, 0, coeffs, 8), PYOPTK_ERR_ARGUMENT, "first step is 1",
               "step 0");
  const double nadam_hyper[6] = {2e-3, 0.9, 0.999, 1e-8, 0.0, 4e-3};
  double nadam_coeffs[9];
  expect_error(api->step_coeffs(nadam, nadam_hyper, 6, 1, nullptr, 0, nadam_coeffs, 9), PYOPTK_ERR_ARGUMENT,
               "scalars has 0 values, expected 1", "missing scalar state");
  expect_error(api->step_coeffs(stream, nullptr, 0, 1, nullptr, 0, coeffs, 0), PYOPTK_ERR_UNSUPPORTED,
               "no coefficient function", "an op without coefficients");
  expect(coeffs[0] == 0 && scalars[0] == 1.0, "refused coefficient calls write nothing");
  expect(api->step_coeffs(adam, hyper, 5, 1, nullptr, 0, coeffs, 8) == PYOPTK_OK && coeffs[0] < 0, "adam step 1");

  // Steps: every refusal leaves the arrays as they were.
  float p[5] = {1, 2, 3, 4, 5}, g[5] = {1, 1, 1, 1, 1}, m[5] = {0}, v[5] = {0};
  void* states[3] = {m, v, nullptr};
  void* no_v[3] = {m, nullptr, nullptr};
  expect_error(api->step_span(adam, 0, PYOPTK_FLOAT32, coeffs, 8, nullptr, g, states, 3, 5, 1), PYOPTK_ERR_ARGUMENT,
               "span param is NULL", "null param");
  expect_error(api->step_span(adam, 0, PYOPTK_FLOAT32, coeffs, 8, p, nullptr, states, 3, 5, 1), PYOPTK_ERR_ARGUMENT,
               "span grad is NULL", "null grad");
  expect_error(api->step_span(adam, 0, PYOPTK_FLOAT32, coeffs, 8, p, g, no_v, 3, 5, 1), PYOPTK_ERR_ARGUMENT,
               "states[1] (exp_avg_sq) is NULL", "null state");
  expect_error(api->step_span(adam, 8, PYOPTK_FLOAT32, coeffs, 8, p, g, states, 3, 5, 1), PYOPTK_ERR_ARGUMENT,
               "states[2] (max_exp_avg_sq) is NULL", "amsgrad needs its state");
  expect_error(api->step_span(adam, 0, PYOPTK_FLOAT32, coeffs, 8, p, g, states, 2, 5, 1), PYOPTK_ERR_ARGUMENT,
               "states has 2 values, expected 3", "states size mismatch");
  expect_error(api->step_span(adam, 0, PYOPTK_FLOAT32, coeffs, 5, p, g, states, 3, 5, 1), PYOPTK_ERR_ARGUMENT,
               "coeffs has 5 values, expected 8", "coeffs size mismatch");
  expect_error(api->step_span(adam, 0, PYOPTK_FLOAT32, nullptr, 8, p, g, states, 3, 5, 1), PYOPTK_ERR_ARGUMENT,
               "coeffs is NULL", "null coeffs");
  expect_error(api->step_span(adam, 0, 7, coeffs, 8, p, g, states, 3, 5, 1), PYOPTK_ERR_ARGUMENT, "dtype 7",
               "bad dtype");
  expect_error(api->step_span(adam, 6, PYOPTK_FLOAT32, coeffs, 8, p, g, states, 3, 5, 1), PYOPTK_ERR_UNSUPPORTED,
               "mode 6", "an invalid mode");
  expect_error(api->step_span(adam, 0, PYOPTK_FLOAT32, coeffs, 8, p, g, states, 3, -1, 1), PYOPTK_ERR_ARGUMENT,
               "count is -1", "negative count");
  expect_error(api->step_span(adam, 0, PYOPTK_FLOAT32, coeffs, 8, p, g, states, 3, 5, -2), PYOPTK_ERR_ARGUMENT,
               "threads is -2", "negative threads");
  expect_error(api->step_span(77, 0, PYOPTK_FLOAT32, coeffs, 8, p, g, states, 3, 5, 1), PYOPTK_ERR_UNKNOWN,
               "op id 77", "unknown op id in a step");
  PyoptkSpan spans[2] = {{p, g, {m, v, nullptr, nullptr}, 2}, {p + 2, nullptr, {m + 2, v + 2, nullptr, nullptr}, 3}};
  expect_error(api->step_spans(adam, 0, PYOPTK_FLOAT32, coeffs, 8, spans, 2, 1), PYOPTK_ERR_ARGUMENT,
               "spans[1] grad is NULL", "a bad second span");
  expect_error(api->step_spans(adam, 0, PYOPTK_FLOAT32, coeffs, 8, nullptr, 2, 1), PYOPTK_ERR_ARGUMENT,
               "spans is NULL", "null spans");
  PyoptkBucketSpan bucket[2] = {{spans[0], 0, 1}, {{p + 2, g + 2, {m + 2, v + 2, nullptr, nullptr}, 3}, 0, 2}};
  expect_error(api->step_bucket(adam, PYOPTK_FLOAT32, coeffs, 2, 8, bucket, 2, 1), PYOPTK_ERR_ARGUMENT,
               "spans[1] coeff_set is 2, not in [0, 2)", "a coefficient set out of range");
  expect_error(api->step_bucket(adam, PYOPTK_FLOAT32, coeffs, 0, 8, bucket, 2, 1), PYOPTK_ERR_ARGUMENT,
               "num_sets is 0", "no coefficient set");
  bucket[1].coeff_set = 0;
  bucket[1].mode = 6;
  expect_error(api->step_bucket(adam, PYOPTK_FLOAT32, coeffs, 2, 8, bucket, 2, 1), PYOPTK_ERR_UNSUPPORTED,
               "mode 6", "a span of an invalid mode");
  for (int i = 0; i < 5; ++i) {
    expect(p[i] == i + 1 && m[i] == 0 && v[i] == 0, "refused steps write nothing");
  }
  expect(api->step_span(adam, 0, PYOPTK_FLOAT32, coeffs, 8, nullptr, nullptr, nullptr, 3, 0, 1) == PYOPTK_OK,
         "an empty span needs no pointers");
  spans[1].grad = g + 2;
  expect(api->step_spans(adam, 0, PYOPTK_FLOAT32, coeffs, 8, spans, 2, 0) == PYOPTK_OK && p[4] < 5 && p[0] < 1,
         "the fixed spans run");
  std::cout << (failures == 0 ? "ok" : "FAILED") << "\n";
  return failures == 0 ? 0 : 1;
}

template <class T>
int run_case(int op, int mode, int first_mode, int n, int steps, int threads, int nspans, const std::vector<double>& hyper,
             std::ifstream& in, std::ofstream& out) {
  const int dtype = sizeof(T) == 4 ? PYOPTK_FLOAT32 : PYOPTK_FLOAT64;
  PyoptkOpInfo info;
  api->op_info(op, &info);
  auto read = [&](std::vector<T>& a) {
    a.resize(n);
    in.read(reinterpret_cast<char*>(a.data()), sizeof(T) * n);
  };
  std::vector<T> param, grads(static_cast<size_t>(n) * steps), scratch;
  read(param);
  in.read(reinterpret_cast<char*>(grads.data()), sizeof(T) * grads.size());
  std::vector<std::vector<T>> states(info.num_states);
  for (int k = 0; k < info.num_states; ++k) {
    if (info.state_flags[k] == 0 || (mode & info.state_flags[k]) != 0) read(states[k]);
  }
  if (!in) {
    std::cerr << "short input\n";
    return 2;
  }
  std::vector<double> scalars(info.num_scalars), coeffs(info.num_coeffs);
  if (api->init_scalars(op, hyper.data(), static_cast<int>(hyper.size()), scalars.data(), info.num_scalars) != PYOPTK_OK) {
    std::cerr << api->last_error() << "\n";
    return 2;
  }
  for (int t = 1; t <= steps; ++t) {
    if (api->step_coeffs(op, hyper.data(), static_cast<int>(hyper.size()), t, scalars.data(), info.num_scalars,
                         coeffs.data(), info.num_coeffs) != PYOPTK_OK) {
      std::cerr << api->last_error() << "\n";
      return 2;
    }
    const T* g = grads.data() + static_cast<size_t>(t - 1) * n;
    const int m = t == 1 ? first_mode : mode;
    int status;
    if (nspans == 1) {
      void* s[PYOPTK_MAX_STATES] = {nullptr, nullptr, nullptr, nullptr};
      for (int k = 0; k < info.num_states; ++k) s[k] = states[k].empty() ? nullptr : states[k].data();
      status = api->step_span(op, m, dtype, coeffs.data(), info.num_coeffs, param.data(), g, s, info.num_states, n,
                              threads);
    } else {  // consecutive pieces of the arrays, of unequal sizes
      const int count = nspans < 0 ? -nspans : nspans;
      std::vector<PyoptkSpan> spans(count);
      int64_t begin = 0;
      for (int i = 0; i < count; ++i) {
        const int64_t end = i + 1 == count ? n : static_cast<int64_t>(n) * (i + 1) * (i + 1) / (count * count);
        PyoptkSpan& sp = spans[i];
        sp = PyoptkSpan{param.data() + begin, g + begin, {nullptr, nullptr, nullptr, nullptr}, end - begin};
        for (int k = 0; k < info.num_states; ++k) sp.states[k] = states[k].empty() ? nullptr : states[k].data() + begin;
        begin = end;
      }
      if (nspans > 0) {
        status = api->step_spans(op, m, dtype, coeffs.data(), info.num_coeffs, spans.data(), nspans, threads);
      } else {  // step_bucket, the spans in backward order, span i taking set i + 1 (set 0: NaN, unused)
        std::vector<double> sets(static_cast<size_t>(count + 1) * info.num_coeffs, std::nan(""));
        std::vector<PyoptkBucketSpan> bucket;
        for (int i = count - 1; i >= 0; --i) {
          std::copy(coeffs.begin(), coeffs.end(), sets.begin() + static_cast<size_t>(i + 1) * info.num_coeffs);
          bucket.push_back(PyoptkBucketSpan{spans[i], m, i + 1});
        }
        status = api->step_bucket(op, dtype, sets.data(), count + 1, info.num_coeffs, bucket.data(), count, threads);
      }
    }
    if (status != PYOPTK_OK) {
      std::cerr << api->last_error() << "\n";
      return 2;
    }
  }
  out.write(reinterpret_cast<const char*>(param.data()), sizeof(T) * n);
  for (const auto& s : states) out.write(reinterpret_cast<const char*>(s.data()), sizeof(T) * s.size());
  out.write(reinterpret_cast<const char*>(scalars.data()), sizeof(double) * scalars.size());
  return 0;
}

int run(const char* cases, const std::string& dir) {
  std::ifstream list(cases);
  std::string line;
  int count = 0;
  while (std::getline(list, line)) {
    std::istringstream fields(line);
    std::string id, name, flags;
    int dtype, n, steps, threads, nspans, first_step;
    fields >> id >> name >> flags >> dtype >> n >> steps >> threads >> nspans >> first_step;
    std::vector<double> hyper;
    for (std::string h; fields >> h;) hyper.push_back(std::strtod(h.c_str(), nullptr));  // strtod reads "nan"
    const int op = op_id(name.c_str());
    int mode = 0, first_mode = 0;
    const std::string all = flags == "-" ? "" : flags;
    if (api->make_mode(op, all.c_str(), &mode) != PYOPTK_OK ||
        api->make_mode(op, first_step ? (all + ",first_step").c_str() : all.c_str(), &first_mode) != PYOPTK_OK) {
      std::cerr << id << ": " << api->last_error() << "\n";
      return 2;
    }
    std::ifstream in(dir + "/" + id + ".in", std::ios::binary);
    std::ofstream out(dir + "/" + id + ".out", std::ios::binary);
    const int status = dtype == PYOPTK_FLOAT32
                           ? run_case<float>(op, mode, first_mode, n, steps, threads, nspans, hyper, in, out)
                           : run_case<double>(op, mode, first_mode, n, steps, threads, nspans, hyper, in, out);
    if (status != 0) {
      std::cerr << "case " << id << " failed\n";
      return status;
    }
    ++count;
  }
  std::cout << "ran " << count << " cases\n";
  return 0;
}

int bench(int count, int steps) {
  const int adam = op_id("adam");
  const double hyper[5] = {1e-3, 0.9, 0.999, 1e-8, 0.0};
  double coeffs[8];
  const int64_t n = 8;
  std::vector<float> memory(static_cast<size_t>(4 * n * count), 0.0f);
  std::vector<PyoptkSpan> spans(count);
  for (int i = 0; i < count; ++i) {
    float* base = memory.data() + 4 * n * i;  // param, grad, exp_avg, exp_avg_sq of array i
    std::fill(base + n, base + 2 * n, 1.0f);
    spans[i] = PyoptkSpan{base, base + n, {base + 2 * n, base + 3 * n, nullptr, nullptr}, n};
  }
  int64_t t = 0;
  auto run_steps = [&](int k) {
    for (int s = 0; s < k; ++s) {
      ++t;
      if (api->step_coeffs(adam, hyper, 5, t, nullptr, 0, coeffs, 8) != PYOPTK_OK ||
          api->step_spans(adam, 0, PYOPTK_FLOAT32, coeffs, 8, spans.data(), count, 1) != PYOPTK_OK) {
        std::cerr << api->last_error() << "\n";
        std::exit(2);
      }
    }
  };
  run_steps(10);
  std::vector<double> rounds;
  for (int r = 0; r < 9; ++r) {
    const auto start = std::chrono::steady_clock::now();
    run_steps(steps);
    const std::chrono::duration<double, std::micro> took = std::chrono::steady_clock::now() - start;
    rounds.push_back(took.count() / steps);
  }
  std::sort(rounds.begin(), rounds.end());
  std::cout << "capi " << count << " " << rounds[rounds.size() / 2] << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: capi_test errors | run CASES DIR | bench COUNT STEPS\n";
    return 2;
  }
  Py_Initialize();
  // A caller built against another ABI is refused with a clear ImportError.
  if (pyoptk_import_version(PYOPTK_ABI_VERSION + 1) != nullptr || !PyErr_ExceptionMatches(PyExc_ImportError)) {
    std::cerr << "FAILED: a wrong ABI version was accepted\n";
    return 1;
  }
  PyObject *type, *value, *trace;
  PyErr_Fetch(&type, &value, &trace);
  PyObject* text = PyObject_Str(value);
  std::cout << "wrong ABI: " << PyUnicode_AsUTF8(text) << "\n";
  Py_XDECREF(text);
  Py_XDECREF(type);
  Py_XDECREF(value);
  Py_XDECREF(trace);
  api = pyoptk_import();
  if (api == nullptr) {
    PyErr_Print();
    return 2;
  }
  // From here on no Python: the GIL is released for every step.
  PyThreadState* saved = PyEval_SaveThread();
  const int status = std::strcmp(argv[1], "errors") == 0                  ? errors()
                     : (std::strcmp(argv[1], "run") == 0 && argc == 4)   ? run(argv[2], argv[3])
                     : (std::strcmp(argv[1], "bench") == 0 && argc == 4) ? bench(std::atoi(argv[2]), std::atoi(argv[3]))
                                                                         : 2;
  PyEval_RestoreThread(saved);
  Py_FinalizeEx();
  return status;
}
