//===- runtime/api/Buffers.cpp - Buffers and dtypes -----------------------===//

#include "runtime/api/Error.h"
#include "runtime/api/Validate.h"

using namespace moert;
using namespace moert::api;

extern "C" {

size_t moert_dtype_size(moert_dtype_t dtype) { return dtypeSize(dtype); }

moert_status_t moert_buffer_alloc(moert_context_t ctx, size_t bytes,
                                  moert_buffer_t *outBuffer) {
  return guard("moert_buffer_alloc", [&] {
    checkContext(ctx);
    require(outBuffer != nullptr, "null output");
    *outBuffer = nullptr;
    auto buffer = std::make_unique<moert_buffer_s>();
    buffer->backend = &ctx->backend();
    buffer->rank = ctx->rank;
    buffer->data = buffer->backend->allocate(ctx->rank, bytes);
    buffer->bytes = bytes;
    *outBuffer = buffer.release();
  });
}

void moert_buffer_free(moert_context_t ctx, moert_buffer_t buffer) {
  if (!buffer)
    return;
  std::unique_ptr<moert_buffer_s> owned(buffer);
  // Nothing to return: a failure is left in the last error.
  guard("moert_buffer_free",
        [&] { buffer->backend->release(buffer->rank, buffer->data); });
}

size_t moert_buffer_size(moert_buffer_t buffer) {
  return buffer ? buffer->bytes : 0;
}

moert_status_t moert_buffer_upload(moert_context_t ctx, moert_view_t dst,
                                   const void *src, int64_t count) {
  return guard("moert_buffer_upload", [&] {
    checkContext(ctx);
    Operand to = operand(dst, count, "dst");
    require(src != nullptr || count == 0, "null source");
    ctx->backend().upload(ctx->rank, to, src, count);
  });
}

moert_status_t moert_buffer_download(moert_context_t ctx, void *dst,
                                     moert_view_t src, int64_t count) {
  return guard("moert_buffer_download", [&] {
    checkContext(ctx);
    Operand from = operand(src, count, "src");
    require(dst != nullptr || count == 0, "null destination");
    ctx->backend().download(ctx->rank, dst, from, count);
  });
}

moert_status_t moert_buffer_copy(moert_context_t ctx, moert_view_t src,
                                 moert_view_t dst, int64_t count) {
  return guard("moert_buffer_copy", [&] {
    checkContext(ctx);
    Operand from = operand(src, count, "src");
    Operand to = operand(dst, count, "dst");
    ctx->backend().copy(ctx->rank, from, to, count);
  });
}

moert_status_t moert_buffer_host_address(moert_context_t ctx, moert_view_t view,
                                         void **outAddress) {
  return guard("moert_buffer_host_address", [&] {
    checkContext(ctx);
    require(outAddress != nullptr, "null output");
    *outAddress = nullptr;
    *outAddress =
        ctx->backend().hostAddress(ctx->rank, operand(view, 1, "view"));
  });
}

moert_status_t moert_buffer_fill(moert_context_t ctx, moert_view_t dst,
                                 int64_t count, double value) {
  return guard("moert_buffer_fill", [&] {
    checkContext(ctx);
    Operand to = operand(dst, count, "dst");
    ctx->backend().fill(ctx->rank, to, count, value);
  });
}

} // extern "C"
