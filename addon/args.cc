#include <climits>
#include <cmath>

#include "common.h"

namespace ringwire {

bool IntArg(const Napi::CallbackInfo& info, size_t i, int64_t* out) {
  if (i >= info.Length() || !info[i].IsNumber()) return false;
  double d = info[i].As<Napi::Number>().DoubleValue();
  // 2^63 is the first double that does not fit in int64.
  if (!std::isfinite(d) || std::trunc(d) != d || d < -9223372036854775808.0 || d >= 9223372036854775808.0) return false;
  *out = static_cast<int64_t>(d);
  return true;
}

bool FdArg(const Napi::CallbackInfo& info, size_t i, int* out) {
  int64_t v;
  if (!IntArg(info, i, &v) || v < 0 || v > INT_MAX) return false;
  *out = static_cast<int>(v);
  return true;
}

bool BytesArg(const Napi::CallbackInfo& info, size_t i, uint8_t** data, size_t* len) {
  if (i >= info.Length() || !info[i].IsTypedArray()) return false;
  Napi::TypedArray ta = info[i].As<Napi::TypedArray>();
  if (ta.TypedArrayType() != napi_uint8_array) return false;
  Napi::Uint8Array u8 = ta.As<Napi::Uint8Array>();
  *data = u8.Data();
  *len = u8.ByteLength();
  return true;
}

bool Int32ArrayArg(const Napi::CallbackInfo& info, size_t i, int32_t** data, size_t* len) {
  if (i >= info.Length() || !info[i].IsTypedArray()) return false;
  Napi::TypedArray ta = info[i].As<Napi::TypedArray>();
  if (ta.TypedArrayType() != napi_int32_array) return false;
  Napi::Int32Array a = ta.As<Napi::Int32Array>();
  *data = a.Data();
  *len = a.ElementLength();
  return true;
}

bool Float64ArrayArg(const Napi::CallbackInfo& info, size_t i, double** data, size_t* len) {
  if (i >= info.Length() || !info[i].IsTypedArray()) return false;
  Napi::TypedArray ta = info[i].As<Napi::TypedArray>();
  if (ta.TypedArrayType() != napi_float64_array) return false;
  Napi::Float64Array a = ta.As<Napi::Float64Array>();
  *data = a.Data();
  *len = a.ElementLength();
  return true;
}

}  // namespace ringwire
