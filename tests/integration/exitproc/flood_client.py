#!/usr/bin/env python3
"""Opens N TCP connections to ADDR:PORT from the given source addresses in turn, keeping
every one that connects, then waits and reports how many are still open and how many
were reset or refused. Prints "open=X reset=Y other=Z".
usage: flood_client.py ADDR PORT N SRC1[,SRC2...]"""
import errno
import selectors
import socket
import sys
import time

addr, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sources = sys.argv[4].split(",")
socks = []
reset = other = 0
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    s.bind((sources[i % len(sources)], 0))
    rc = s.connect_ex((addr, port))
    if rc not in (0, errno.EINPROGRESS):
        other += 1
        s.close()
        continue
    socks.append(s)
    # Keep the pace reasonable for a 2-core machine; drain results every 500.
    if i % 500 == 499:
        time.sleep(0.05)
time.sleep(3)
still = 0
sel = selectors.DefaultSelector()
for s in socks:
    try:
        s.recv(1)
        other += 1  # data or EOF: not expected from a holding server
    except BlockingIOError:
        still += 1
    except ConnectionResetError:
        reset += 1
    except OSError:
        other += 1
print(f"open={still} reset={reset} other={other}", flush=True)
for s in socks:
    s.close()
