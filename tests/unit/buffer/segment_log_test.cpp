#include <gtest/gtest.h>

#include "buffer/segment_log.h"
#include "fault_file_layer.h"
