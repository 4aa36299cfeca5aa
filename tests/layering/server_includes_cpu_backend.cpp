// Must not compile: the server sees only the engine's facade (engine/api), never a backend.
#include "cpu_backend.h"
