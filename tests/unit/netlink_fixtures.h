// Malformed netlink datagrams the fuzz targets found, shared by the codec tests.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

namespace portier::fixtures {

/// One message header claiming 0xfffffff0 bytes: libmnl's mnl_nlmsg_ok() took it for a
/// negative int and let it pass (netlink_message.h).
inline std::vector<std::uint8_t> message_claiming_4_gib() {
  return {0xf0, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
}

/// An NLMSG_ERROR of 36 bytes (header, errno, the echoed request header) with `error`.
inline std::vector<std::uint8_t> error_message(std::int32_t error) {
  std::vector<std::uint8_t> bytes(36, 0);
  bytes[0] = 36;  // nlmsg_len
  bytes[4] = 2;   // NLMSG_ERROR
  std::memcpy(bytes.data() + 16, &error, sizeof error);
  bytes[20] = 16;  // the echoed header's length
  return bytes;
}

}  // namespace portier::fixtures
