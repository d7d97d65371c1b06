"""Restart time with N queued messages: queue N QoS 1 messages for an
offline persistent session, SIGKILL herald, restart on the same data dir and
time start -> accepting connections, and -> all N delivered."""
import os, socket, struct, subprocess, sys, time, tempfile, signal

HERALD = sys.argv[1]; N = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
PORT = 18990
def s(t): t = t.encode(); return struct.pack('>H', len(t)) + t
def pkt(h, body):
    n = len(body); rl = b''
    while True:
        d = n % 128; n //= 128
        if n: d |= 128
        rl += bytes([d])
        if not n: break
    return bytes([h]) + rl + body
def connect(cid, clean):
    c = socket.create_connection(('127.0.0.1', PORT)); c.settimeout(30)
    c.sendall(pkt(0x10, s('MQTT') + bytes([4, 0 if not clean else 2]) + struct.pack('>H', 600) + s(cid)))
    assert c.recv(4)[3] == 0
    return c
def start(d):
    p = subprocess.Popen([HERALD, '--listen', f'127.0.0.1:{PORT}', '--admin-listen', '127.0.0.1:0', '--data-dir', os.path.join(d, 'data')],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.monotonic()
    while True:
        try:
            socket.create_connection(('127.0.0.1', PORT)).close(); break
        except OSError:
            time.sleep(0.005)
    return p, time.monotonic() - t0
d = tempfile.mkdtemp()
cfg = os.path.join(d, 'herald.toml')
open(cfg, 'w').write(f"[limits]\nmax_queued_messages = {N * 2}\nmax_queued_bytes = {N * 1000}\n")
os.environ['HERALD_CONFIG'] = cfg
p, _ = start(d)
sub = connect('queued-sub', False)
sub.sendall(pkt(0x82, struct.pack('>H', 1) + s('rq/t') + bytes([1]))); sub.recv(5)
sub.close(); time.sleep(0.2)
pub = connect('queued-pub', True)
payload = b'x' * 64
t0 = time.monotonic()
buf = bytearray()
acked = 0
for i in range(N):
    pid = i % 65535 + 1
    buf += pkt(0x32, s('rq/t') + struct.pack('>H', pid) + payload)
    if len(buf) > 60000 or i == N - 1:
        pub.sendall(buf); buf = bytearray()
        # read acks as they come, without blocking the sender for long
        pub.setblocking(False)
        try:
            while True:
                data = pub.recv(65536)
                if not data: break
                acked += len(data) // 4
        except BlockingIOError:
            pass
        pub.setblocking(True)
pub.settimeout(60)
while acked < N:
    acked += len(pub.recv(65536)) // 4
print(f"queued {N} QoS 1 messages (all PUBACKed) in {time.monotonic() - t0:.1f} s")
os.kill(p.pid, signal.SIGKILL); p.wait()
p, listen_s = start(d)
t0 = time.monotonic()
sub = connect('queued-sub', False)
got = 0; rb = b''
while got < N:
    try:
        rb += sub.recv(1 << 20)
    except TimeoutError:
        print(f"timed out after {got} deliveries"); raise
    while len(rb) >= 2:
        # decode remaining length
        mul, val, i = 1, 0, 1
        while True:
            b = rb[i]; val += (b & 127) * mul; mul *= 128; i += 1
            if not b & 128: break
        if len(rb) < i + val: break
        frame, rb = rb[:i + val], rb[i + val:]
        if frame[0] >> 4 == 3:
            got += 1
            tl = struct.unpack('>H', frame[i:i + 2])[0]
            pid = frame[i + 2 + tl:i + 4 + tl]
            sub.sendall(b'\x40\x02' + pid)
print(f"restart to listening: {listen_s * 1000:.0f} ms; then all {N} queued messages delivered in {time.monotonic() - t0:.1f} s")
p.terminate(); p.wait()
