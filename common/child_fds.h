// The fixed fd numbers a sandboxed child is started with (docs/design.md#3-start-up).
// Everything else is closed by the broker before exec; stdin/stdout are /dev/null
// and stderr is the broker's log stream.
#pragma once

namespace tw::child_fd {

constexpr int kBrokerControl = 3;  // SOCK_SEQPACKET to the broker
constexpr int kPeerControl = 4;    // SOCK_SEQPACKET netproc <-> dataproc
constexpr int kRingMemory = 5;     // sealed memfd holding both packet rings
constexpr int kDoorbellNetToData = 6;  // eventfd: netproc produced into net->data
constexpr int kDoorbellDataToNet = 7;  // eventfd: dataproc produced into data->net
constexpr int kCount = 8;          // first fd number past the fixed set

}  // namespace tw::child_fd

namespace tw {

// Exit status of netproc or dataproc when the link between them closed (the other
// child died or broke the protocol): the broker then restarts both.
constexpr int kExitPeerLinkLost = 3;
// Exit status of netproc when waiting on the underlay socket failed for good: the
// broker restarts the children on the same socket and logs why.
constexpr int kExitUnderlayFailed = 4;

}  // namespace tw
