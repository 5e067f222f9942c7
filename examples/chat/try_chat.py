"""Joins the chat example as a nick, says hello, and prints what the room sends back.

Usage: python3 examples/chat/try_chat.py [nick] [host:port]   (default alice 127.0.0.1:3250)
Only the standard library: the packet and message format is small enough to write by hand.
"""

import json, socket, sys, zlib

def packet(kind, body=b""):
    return bytes([kind]) + len(body).to_bytes(3, "big") + body

def message(kind, route, body, msg_id=None):  # ids below 128 fit in one byte
    head = bytes([kind << 1]) + (bytes([msg_id]) if msg_id else b"")
    return packet(4, head + bytes([len(route)]) + route.encode() + json.dumps(body).encode())

def receive(sock):  # prints the next data packet, skipping heartbeats
    kind, size = 3, 0
    while kind == 3:
        head = sock.recv(4, socket.MSG_WAITALL)
        kind, size = head[0], int.from_bytes(head[1:], "big")
    body = sock.recv(size, socket.MSG_WAITALL)
    if kind == 1:
        return print("handshake:", body.decode())
    flag, rest = body[0], body[1:]
    if (flag >> 1) & 7 == 2:  # a response: id, then body
        label, rest = f"response {rest[0]}:", rest[1:]
    else:  # a push: route, then body
        label, rest = f"push {rest[1:1 + rest[0]].decode()}:", rest[1 + rest[0]:]
    print(label, (zlib.decompress(rest) if flag & 0x10 else rest).decode())
    return label

nick = sys.argv[1] if len(sys.argv) > 1 else "alice"
host, port = (sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1:3250").rsplit(":", 1)
sock = socket.create_connection((host, int(port)))
sys_info = {"platform": "python", "libVersion": "0", "clientBuildNumber": "1", "clientVersion": "1"}
sock.sendall(packet(1, json.dumps({"sys": sys_info}).encode()))
receive(sock)
sock.sendall(packet(2))  # handshake ack
sock.sendall(message(0, "room.room.join", {"name": nick}, msg_id=1))
while receive(sock) != "response 1:":
    pass
sock.sendall(message(1, "room.room.message", {"name": nick, "content": "hello"}))
sock.settimeout(5)  # then stop listening
try:
    while True:
        receive(sock)
except TimeoutError:
    pass
