// Must compile: with the same target settings as the two probes that must not, so their
// failure is the include path's doing and nothing else.
#include "engine.h"
#include "engine_worker.h"
