#include "dataproc/wireguard/keypair.h"

#include <sodium.h>

namespace tw::wg {

Keypair::~Keypair() {
  sodium_memzero(send_key.data(), send_key.size());
  sodium_memzero(recv_key.data(), recv_key.size());
}

}  // namespace tw::wg
