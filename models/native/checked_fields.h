// Reading a Python object's fields by name from C++, checked once: a tensor's dtype, shape and device, or
// an int, each failing with ValueError("<owner>.<field>: expected ..., got ...") so that a renamed or
// reshaped Python buffer is named at load time instead of crashing (or silently misreading) in a step.
// Included by decode_step.cpp only (one translation unit; hence the anonymous namespace).

#pragma once

#include <torch/extension.h>

#include <string>
#include <utility>
#include <vector>

namespace py = pybind11;
using at::Tensor;

namespace {

// An expected shape: sizes (-1: any) and how the Python side writes it, e.g. {{n, V}, "(n, V)"}.
struct Shape {
  std::vector<int64_t> sizes;
  const char* doc;
};

std::string dtype_name(at::ScalarType dtype) {
  switch (dtype) {
    case at::kFloat: return "float32";
    case at::kDouble: return "float64";
    case at::kLong: return "int64";
    case at::kInt: return "int32";
    case at::kBool: return "bool";
    default: return c10::toString(dtype);
  }
}

std::string sizes_text(at::IntArrayRef sizes) {
  std::string text = "(";
  for (size_t i = 0; i < sizes.size(); ++i) {
    text += (i ? ", " : "") + (sizes[i] < 0 ? std::string("*") : std::to_string(sizes[i]));
  }
  return text + (sizes.size() == 1 ? ",)" : ")");
}

// The fields of one Python object the Stepper reads, named for errors ("StepBuffers.sampling"). Each
// getter checks what it reads and throws ValueError("<owner>.<field>: expected ..., got ...").
class Fields {
 public:
  Fields(py::object owner, std::string name) : owner_(std::move(owner)), name_(std::move(name)) {}

  [[noreturn]] void fail(const std::string& field, const std::string& problem) const {
    throw py::value_error(name_ + "." + field + ": " + problem);
  }

  py::object get(const char* field) const {
    if (!py::hasattr(owner_, field)) fail(field, "missing");
    return owner_.attr(field);
  }

  Fields nested(const char* field) const { return Fields(get(field), name_ + "." + field); }

  int64_t integer(const char* field) const {
    const py::object value = get(field);
    if (!py::isinstance<py::int_>(value)) fail(field, "expected an int, got " + type_of(value));
    return value.cast<int64_t>();
  }

  Tensor tensor(const char* field, at::ScalarType dtype, const Shape& shape) const {
    return check(field, get(field), dtype, shape);
  }

  // A tuple or list of `count` tensors of one dtype and shape (one per layer).
  std::vector<Tensor> tensors(const char* field, size_t count, at::ScalarType dtype, const Shape& shape) const {
    const std::vector<py::object> items = sequence(field, get(field), count);
    std::vector<Tensor> tensors;
    for (size_t i = 0; i < items.size(); ++i) {
      tensors.push_back(check(std::string(field) + "[" + std::to_string(i) + "]", items[i], dtype, shape));
    }
    return tensors;
  }

  std::vector<py::object> sequence(const std::string& field, const py::object& value, size_t count) const {
    if (!py::isinstance<py::tuple>(value) && !py::isinstance<py::list>(value)) {
      fail(field, "expected a tuple or list, got " + type_of(value));
    }
    const py::sequence items(value);
    if (items.size() != count) {
      fail(field, "expected " + std::to_string(count) + " entries (one per layer), got " +
                      std::to_string(items.size()));
    }
    std::vector<py::object> objects;
    for (const py::handle item : items) objects.push_back(py::reinterpret_borrow<py::object>(item));
    return objects;
  }

  Tensor check(const std::string& field, const py::object& value, at::ScalarType dtype, const Shape& shape) const {
    const std::string expected = "expected " + dtype_name(dtype) + " of shape " + shape.doc + " = " +
                                 sizes_text(shape.sizes) + " on the CPU";
    if (!THPVariable_Check(value.ptr())) fail(field, expected + ", got " + type_of(value));
    const Tensor tensor = THPVariable_Unpack(value.ptr());
    bool same = tensor.scalar_type() == dtype && tensor.dim() == static_cast<int64_t>(shape.sizes.size()) &&
                tensor.device().is_cpu();
    for (int64_t d = 0; same && d < tensor.dim(); ++d) {
      same = shape.sizes[d] < 0 || tensor.size(d) == shape.sizes[d];
    }
    if (!same) {
      fail(field, expected + ", got " + dtype_name(tensor.scalar_type()) + " of shape " +
                      sizes_text(tensor.sizes()) + (tensor.device().is_cpu() ? "" : " on " + tensor.device().str()));
    }
    return tensor;
  }

  static std::string type_of(const py::handle& value) { return py::str(py::type::of(value).attr("__name__")); }

 private:
  py::object owner_;
  std::string name_;
};

}  // namespace
