// DecodeBatch's step (models/decode.py: `_sample` then `_advance`) in C++, with the GIL released.
//
// Why: from Python a step is ~25 small ATen calls, and each pays the interpreter and the Python argument
// parser (~135 us a step at batch 1, mostly overhead) while holding the GIL, so the API's event loop and
// the engine thread take turns. Here the same at:: ops run in the same order, with the same out= buffers,
// on the very tensors the Python step uses (the views `_Views` makes for n active rows and the weights
// of `FusedCharLSTM`). Every kernel therefore sees the same inputs in the same layout, and the ids and
// state are bitwise those of the Python step: change one and you must change the other the same way
// (tests/models/test_native_step.py compares them bit for bit). Two parts are plain loops instead of
// ATen calls, because their result is exact by construction: the stable sort (unique), and the
// inverse-CDF choice (a double-accumulated cumsum, one float product, comparisons).
//
// Build and load: models/native/__init__.py. CPU tensors only; on CUDA DecodeBatch keeps its Python step.

#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <vector>

namespace py = pybind11;
using at::Tensor;

namespace {

Tensor tensor_attr(const py::handle& owner, const char* name) {
  return owner.attr(name).cast<Tensor>();
}

std::vector<Tensor> tensors_attr(const py::handle& owner, const char* name) {
  std::vector<Tensor> tensors;
  for (const py::handle item : owner.attr(name)) tensors.push_back(item.cast<Tensor>());
  return tensors;
}

// One layer's gate pre-activations, as models/decode.py's `_Gates`: (i, f, o) side by side, then g.
struct Gates {
  Tensor all, sigmoid, i, f, o, g;
};

class Stepper {
 public:
  // `views`: a models.decode._Views of n rows; `weights`: the batch's models.decode.FusedCharLSTM.
  Stepper(const py::object& views, const py::object& weights)
      : logits_(tensor_attr(views, "logits")),
        keep_k_(tensor_attr(views, "keep_k")),
        temperature_(tensor_attr(views, "temperature")),
        top_p_(tensor_attr(views, "top_p")),
        has_k_(tensor_attr(views, "has_k")),
        no_k_(tensor_attr(views, "no_k")),
        uniform_(tensors_attr(views, "uniform")),
        h_(tensors_attr(views, "h")),
        c_(tensors_attr(views, "c")),
        layer_inputs_(tensors_attr(views, "layer_inputs")),
        tanh_c_(tensor_attr(views, "tanh_c")),
        sorted_(tensor_attr(views, "sorted")),
        order_(tensor_attr(views, "order")),
        scaled_(tensor_attr(views, "scaled")),
        probs_(tensor_attr(views, "probs")),
        mass_before_(tensor_attr(views, "mass_before")),
        outside_top_p_(tensor_attr(views, "outside_top_p")),
        mass_k_(tensor_attr(views, "mass_k")),
        ids_(tensor_attr(views, "ids")),
        ids_flat_(tensor_attr(views, "ids_flat")),
        input_table_(tensor_attr(weights, "input_table")),
        recurrent_0_(tensor_attr(weights, "recurrent_0")),
        head_weight_(tensor_attr(weights, "head_weight")),
        head_bias_(tensor_attr(weights, "head_bias")) {
    const std::vector<Tensor> gates = tensors_attr(views, "gates");
    const py::list gate_views(views.attr("gate_views"));
    TORCH_CHECK(gates.size() == h_.size() && gate_views.size() == h_.size() && c_.size() == h_.size(),
                "Stepper: gates, gate_views, h and c must have one entry per layer");
    for (size_t layer = 0; layer < gates.size(); ++layer) {
      const py::handle view = gate_views[layer];
      gates_.push_back({gates[layer], tensor_attr(view, "sigmoid"), tensor_attr(view, "i"),
                        tensor_attr(view, "f"), tensor_attr(view, "o"), tensor_attr(view, "g")});
    }
    for (const py::handle layer : weights.attr("stacked")) {
      const auto pair = layer.cast<std::pair<Tensor, Tensor>>();
      stacked_weight_.push_back(pair.first);
      stacked_bias_.push_back(pair.second);
    }
    TORCH_CHECK(stacked_weight_.size() + 1 == gates_.size() && layer_inputs_.size() + 1 == gates_.size(),
                "Stepper: the views and the weights disagree on the number of layers");
    TORCH_CHECK(logits_.device().is_cpu() && input_table_.device().is_cpu(),
                "Stepper: CPU tensors only (on CUDA DecodeBatch steps in Python)");
    // sort_rows() and choose() walk rows through raw pointers: each row's columns must be adjacent.
    for (const Tensor* rows : {&logits_, &sorted_, &order_, &probs_}) {
      TORCH_CHECK(rows->dim() == 2 && rows->stride(1) == 1, "Stepper: rows with adjacent columns only");
    }
    // step() copies the ids straight out of ids_flat's memory.
    TORCH_CHECK(ids_flat_.scalar_type() == at::kLong && ids_flat_.is_contiguous(),
                "Stepper: ids_flat must be a contiguous int64 tensor");
  }

  // One step of `DecodeBatch.step` for the n rows: the chosen ids, and new state and logits in place.
  // The flags are DecodeBatch's counters: every row greedy, and whether any row needs temperature
  // scaling, top-k or top-p (the Python step skips those ops alike when no row needs them).
  std::vector<int64_t> step(int64_t column, bool all_greedy, bool scaled, bool top_k, bool top_p) {
    TORCH_CHECK(column >= 0 && column < static_cast<int64_t>(uniform_.size()),
                "Stepper.step: column ", column, " outside the uniform window of ", uniform_.size());
    // Nothing below touches a Python object: the tensors are held here, so the GIL can go.
    py::gil_scoped_release no_gil;
    // Skips the autograd layer of the dispatcher (nothing here requires grad): the same CPU kernels
    // run on the same tensors, ~20 % less time per step at batch 1-8. (From Python, entering
    // inference mode costs more than it saves; see DecodeBatch.step.)
    c10::InferenceMode inference_mode;
    if (all_greedy) {
      at::argmax_out(ids_, logits_, 1, /*keepdim=*/true);
    } else {
      sample(column, scaled, top_k, top_p);
    }
    const int64_t* first = ids_flat_.const_data_ptr<int64_t>();
    std::vector<int64_t> ids(first, first + ids_flat_.size(0));
    advance();
    return ids;
  }

 private:
  // DecodeBatch._sample: the inverse CDF at each row's uniform over its sorted, filtered distribution.
  void sample(int64_t column, bool scaled, bool top_k, bool top_p) {
    sort_rows();
    Tensor logits = sorted_;
    if (scaled) logits = at::div_out(scaled_, sorted_, temperature_);
    at::softmax_out(probs_, logits, 1);
    if (top_k) {
      probs_.mul_(keep_k_);
      at::sum_out(mass_k_, probs_, /*dim=*/1, /*keepdim=*/true);
      at::addcmul_out(mass_k_, no_k_, mass_k_, has_k_);
      probs_.div_(mass_k_);
    }
    if (top_p) {
      at::cumsum_out(mass_before_, probs_, 1);
      mass_before_.sub_(probs_);
      at::ge_out(outside_top_p_, mass_before_, top_p_);
      probs_.masked_fill_(outside_top_p_, at::Scalar(0));
    }
    choose(column);
  }

  // at::sort_out(sorted, order, logits, stable=true, dim=1, descending=true), row by row. A stable
  // sort's result is unique (NaN first, as torch.sort puts it), so this is that op bit for bit; it is
  // here because ATen's sort costs ~3 us a row of 80, the dearest op of a step at batch 32.
  //
  // Each element becomes one 64-bit key, its value's bits made to order as unsigned integers order
  // (high half) and its index reversed (low half): a plain descending sort of the keys puts larger
  // values first and, among equal values, the lower index first, which is what stability means here,
  // with no comparator indirection and no allocation per row.
  void sort_rows() {
    const int64_t n = logits_.size(0), V = logits_.size(1);
    TORCH_CHECK(V <= std::numeric_limits<uint32_t>::max(), "Stepper: vocabulary too large");
    const float* logits = logits_.const_data_ptr<float>();
    float* sorted = sorted_.mutable_data_ptr<float>();
    int64_t* order = order_.mutable_data_ptr<int64_t>();
    const int64_t logits_stride = logits_.stride(0), sorted_stride = sorted_.stride(0);
    const int64_t order_stride = order_.stride(0);
    keys_.resize(V);
    for (int64_t r = 0; r < n; ++r) {
      const float* row = logits + r * logits_stride;
      for (int64_t j = 0; j < V; ++j) {
        keys_[j] = (static_cast<uint64_t>(sortable_bits(row[j])) << 32) |
                   (std::numeric_limits<uint32_t>::max() - static_cast<uint32_t>(j));
      }
      std::sort(keys_.begin(), keys_.end(), std::greater<uint64_t>());
      for (int64_t j = 0; j < V; ++j) {
        const int64_t index = std::numeric_limits<uint32_t>::max() - static_cast<uint32_t>(keys_[j]);
        sorted[r * sorted_stride + j] = row[index];
        order[r * order_stride + j] = index;
      }
    }
  }

  // A float's bits as an unsigned integer that orders as torch.sort orders floats: -0.0 equal to 0.0
  // (both map to 0.0's key) and every NaN above +inf (one key for all, so NaNs keep index order).
  static uint32_t sortable_bits(float value) {
    if (std::isnan(value)) return std::numeric_limits<uint32_t>::max();
    uint32_t bits;
    const float canonical = value == 0.0f ? 0.0f : value;
    std::memcpy(&bits, &canonical, sizeof bits);
    // Negative floats order backwards as integers: flip all their bits; positive ones go above them.
    return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
  }

  // The Python step's last six ops in one pass per row: cdf = cumsum(probs) (ATen's CPU cumsum adds
  // in double and rounds each sum to float, as here); target = uniform * cdf[V-1]; the index is the
  // first column whose cdf exceeds target, clamped to the last non-zero probability (the Python step
  // does that by setting cdf to inf from there on); the id is order[index]. Integer and single float
  // operations only, so the same bits as cumsum, mul, eq, masked_fill, searchsorted and gather.
  void choose(int64_t column) {
    const int64_t n = probs_.size(0), V = probs_.size(1);
    const float* probs = probs_.const_data_ptr<float>();
    const int64_t* order = order_.const_data_ptr<int64_t>();
    const float* uniform = uniform_[column].const_data_ptr<float>();
    int64_t* ids = ids_flat_.mutable_data_ptr<int64_t>();
    const int64_t probs_stride = probs_.stride(0), order_stride = order_.stride(0);
    const int64_t uniform_stride = uniform_[column].stride(0);
    cdf_buffer_.resize(V);
    for (int64_t r = 0; r < n; ++r) {
      const float* p = probs + r * probs_stride;
      double sum = 0;
      for (int64_t j = 0; j < V; ++j) {
        sum += p[j];
        cdf_buffer_[j] = static_cast<float>(sum);
      }
      const float target = uniform[r * uniform_stride] * cdf_buffer_[V - 1];
      // NaN or infinite logits (a broken model: temperatures too cold to overflow are refused before
      // this) leave no distribution; the PyTorch step's searchsorted then indexes out of range, so fail
      // the same way instead of quietly choosing the last character.
      TORCH_CHECK(!std::isnan(target), "Stepper: row ", r, " has no distribution (NaN or infinite logits)");
      int64_t j = 0;
      while (j < V - 1 && p[j + 1] != 0.0f && !(cdf_buffer_[j] > target)) ++j;
      ids[r] = order[r * order_stride + j];
    }
  }

  // DecodeBatch._advance (with _cell): feed the chosen ids through every layer, then the head.
  void advance() {
    for (size_t layer = 0; layer < gates_.size(); ++layer) {
      Gates& gates = gates_[layer];
      if (layer == 0) {
        at::index_select_out(gates.all, input_table_, 0, ids_flat_);
        gates.all.addmm_(h_[0], recurrent_0_);
      } else {
        at::addmm_out(gates.all, stacked_bias_[layer - 1], layer_inputs_[layer - 1], stacked_weight_[layer - 1]);
      }
      gates.sigmoid.sigmoid_();
      gates.g.tanh_();
      c_[layer].mul_(gates.f).addcmul_(gates.i, gates.g);
      at::tanh_out(tanh_c_, c_[layer]);
      at::mul_out(h_[layer], gates.o, tanh_c_);
    }
    at::addmm_out(logits_, head_bias_, h_.back(), head_weight_);
  }

  // Views of the batch's rows (n, ...): next logits, sampling settings, uniforms, state.
  Tensor logits_, keep_k_, temperature_, top_p_, has_k_, no_k_;
  std::vector<Tensor> uniform_, h_, c_, layer_inputs_;
  // Scratch, overwritten every step.
  std::vector<Gates> gates_;
  Tensor tanh_c_, sorted_, order_, scaled_, probs_, mass_before_, outside_top_p_, mass_k_, ids_, ids_flat_;
  // FusedCharLSTM's weights.
  Tensor input_table_, recurrent_0_, head_weight_, head_bias_;
  std::vector<Tensor> stacked_weight_, stacked_bias_;
  // sort_rows' and choose()'s row buffers, kept to spare an allocation a step.
  std::vector<uint64_t> keys_;
  std::vector<float> cdf_buffer_;
};

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "DecodeBatch's step in C++: the same ATen ops as models/decode.py, with the GIL released";
  // module_local: two builds of this file loaded in one process (a test building into a temporary
  // directory) must not clash in pybind11's registry of C++ types.
  py::class_<Stepper>(m, "Stepper", py::module_local())
      .def(py::init<const py::object&, const py::object&>(), py::arg("views"), py::arg("weights"))
      .def("step", &Stepper::step, py::arg("column"), py::arg("all_greedy"), py::arg("scaled"),
           py::arg("top_k"), py::arg("top_p"));
}
