#include "common/log.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace tw {

void init_logging(const std::string& process_tag, const std::string& level) {
  // Re-initialising (config read after an early default) replaces the logger.
  spdlog::drop(process_tag);
  auto logger = spdlog::stderr_logger_mt(process_tag);
  // "<level> <process>: message": systemd adds the time; a terminal user sees order.
  logger->set_pattern("%L %H:%M:%S.%e " + process_tag + ": %v");
  logger->set_level(spdlog::level::from_str(level));
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);
}

}  // namespace tw
