#include "abort_on_load.h"

extern "C" __attribute__((visibility("default"))) int some_library_function() {
    return 42;
}
