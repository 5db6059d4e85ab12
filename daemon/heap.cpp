#include "heap.h"

#include <malloc.h>

namespace portier {

void trim_heap() { ::malloc_trim(0); }

}  // namespace portier
