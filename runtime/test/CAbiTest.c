/*===- runtime/test/CAbiTest.c - The contract compiles and runs as C ----===*/

#include "runtime/moert.h"

#include <stdio.h>
#include <string.h>

static moert_status_t rankBody(moert_context_t ctx, void *user) {
  int32_t ranks[2] = {0, 1};
  moert_group_t group;
  moert_status_t status = moert_group_create(ctx, ranks, 2, &group);
  if (status != MOERT_OK)
    return status;
  int64_t value = moert_context_rank(ctx) + 1;
  status = moert_all_reduce_i64(ctx, group, MOERT_REDUCE_SUM, &value);
  moert_group_destroy(group);
  if (status == MOERT_OK && value != 3)
    status = MOERT_INTERNAL;
  (void)user;
  return status;
}

int main(void) {
  moert_world_desc_t desc = {MOERT_BACKEND_CPU, 1, 2, 10000};
  moert_world_t world;
  if (moert_world_create(&desc, &world) != MOERT_OK) {
    fprintf(stderr, "create: %s\n", moert_last_error());
    return 1;
  }
  if (moert_world_run(world, rankBody, NULL) != MOERT_OK) {
    fprintf(stderr, "run: %s\n", moert_last_error());
    return 1;
  }
  /* Errors come back as a status plus a message, never as an exception. */
  desc.nodes = 0;
  moert_world_t bad;
  if (moert_world_create(&desc, &bad) != MOERT_INVALID_ARGUMENT ||
      strstr(moert_last_error(), "mesh") == NULL) {
    fprintf(stderr, "expected a mesh error, got: %s\n", moert_last_error());
    return 1;
  }
  moert_world_destroy(world);
  printf("C ABI ok\n");
  return 0;
}
