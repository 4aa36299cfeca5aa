// Must not compile: the scheduler is behind the facade; the server asks the Engine instead.
#include "scheduler.h"
