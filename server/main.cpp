// bptserve: serves a model over gRPC (and the OpenAI HTTP API) until SIGTERM or SIGINT, then drains and exits 0.
#include <signal.h>

#include <iostream>

#include "bptserve_server.h"

int main(int argc, char** argv) {
  int exit_code = 0;
  auto options = bpt::server::ParseServerOptions(argc, argv, &exit_code);
  if (!options.ok()) return exit_code;
  std::cout << options->Describe() << std::flush;

  // Signals are taken by sigwait below, never by a handler in some arbitrary thread.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  bpt::server::BptServer server(*options);
  bpt::Status started = server.Start();
  if (!started.ok()) {
    std::cerr << "bptserve: " << started.ToString() << "\n";
    return 1;
  }
  std::cout << "listening on port " << server.port() << ", metrics on port " << server.metrics_port()
            << ", http on port " << server.http_port() << "; loading the model" << std::endl;
  std::thread loaded([&server] {
    bpt::Status s = server.WaitUntilLoaded();
    if (!s.ok()) {
      std::cerr << "bptserve: cannot load the model: " << s.ToString() << std::endl;
      std::_Exit(1);  // nothing to drain: no request was ever admitted
    }
    std::cout << "model loaded (" << server.LoadedSummary() << "); serving" << std::endl;
  });
  loaded.detach();

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  std::cout << "signal " << signal_number << ": draining" << std::endl;
  server.Drain();
  std::cout << "drained; exiting" << std::endl;
  return 0;
}
