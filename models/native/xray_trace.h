// The X-ray's traced LSTM layer (xray_trace.cpp), bound into the one extension module whose
// PYBIND11_MODULE lives in decode_step.cpp: one build, one load, one name for both.

#pragma once

#include <torch/extension.h>

void bind_xray_trace(pybind11::module_& m);
