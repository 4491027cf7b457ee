#include "compiler/Import/Importers.h"
void moe::registerImporters() {}
