#!/usr/bin/env python3
"""A fake upstream proxy that answers every connection with bytes that are neither a
SOCKS5 nor an HTTP reply, then closes. usage: garbage_proxy.py ADDR PORT"""
import socket
import sys

srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((sys.argv[1], int(sys.argv[2])))
srv.listen(64)
while True:
    c, _ = srv.accept()
    try:
        c.recv(512)
        c.sendall(b"\x07\xff\x00garbage\r\n\r\n" * 3)
    except OSError:
        pass
    c.close()
