"""Cold start and peak RSS of a release Lambda binary, run end to end through a Lambda
Runtime API served here (the same HTTP protocol Lambda's runtime uses), with moto for
DynamoDB/SSM and the WeChat emulator.

MODE `refresh`: token-refresh with a real EventBridge scheduled event.
MODE `callback`: callback with a real API Gateway v2 event (a signed URL verification).
MODE `send`: send with a real API Gateway v2 event (GET /v1/apps/{appid}/token: the token
from DynamoDB, or one WeChat call and one write).
MODE `floor`: any function with a real EventBridge scheduled event (the hello-world floor).
BINARY `python:MODULE.handler` runs a Python handler under awslambdaric (the wechatpy peer).
MODE `worker`: batch-worker with a real SQS event carrying a follower-sync job for a run that
does not exist (one DynamoDB read, then the partial-batch answer with no failures).

Every call the function makes to AWS (moto) and to WeChat (the emulator) goes through a timing
proxy here: `round_trips_ms` is the time those calls spent outside the function (request
received → upstream answer relayed), so `first_response_ms - round_trips_ms` is the
function's own time to its first answer.

Usage (from scripts/bench, which starts moto and the emulator):
  python scripts/bench_cold_start.py BINARY EMULATOR_BASE APPID SECRET RUNS MODE
"""
import hashlib, json, os, socket, subprocess, sys, threading, time, urllib.parse, uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3

binary, emulator_base, appid, secret, runs, mode = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6]
data = os.path.join(os.path.dirname(__file__), "..", "tests", "data")
callback_token = "bench-callback-token"
if mode in ("refresh", "floor"):
    event = open(os.path.join(data, "eventbridge-scheduled-event.json")).read()
elif mode == "send":
    e = json.load(open(os.path.join(data, "apigw-v2-get-token.json")))
    path = f"/v1/apps/{appid}/token"
    e.update(rawPath=path)
    e["requestContext"]["http"].update(path=path, method="GET")
    event = json.dumps(e)
elif mode == "worker":
    e = json.load(open(os.path.join(data, "sqs-event.json")))
    e["Records"][0]["body"] = json.dumps({"job": "follower_sync", "appid": appid, "run_id": "fs-none"})
    event = json.dumps(e)
else:
    ts, nonce = str(int(time.time())), "271828"
    sig = hashlib.sha1("".join(sorted([callback_token, ts, nonce])).encode()).hexdigest()
    query = {"signature": sig, "timestamp": ts, "nonce": nonce, "echostr": "5837397749254"}
    e = json.load(open(os.path.join(data, "apigw-v2-wechat-post.json")))
    path = f"/wechat/{appid}"
    e.update(rawPath=path, rawQueryString=urllib.parse.urlencode(query), queryStringParameters=query, routeKey="GET /wechat/{appid}")
    e["requestContext"]["http"].update(method="GET", path=path)
    e["pathParameters"] = {"appid": appid}
    event = json.dumps(e)

endpoint = os.environ["AWS_ENDPOINT_URL"]
assert endpoint.startswith("http://127.0.0.1:"), endpoint
table = "wxpush-bench-" + uuid.uuid4().hex[:8]
prefix = "/wxpush-bench-" + uuid.uuid4().hex[:8]
ddb = boto3.client("dynamodb")
ddb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                 AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
                 KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}])
ssm = boto3.client("ssm")
ssm.put_parameter(Name=f"{prefix}/apps/{appid}/app_secret", Value=secret, Type="SecureString")
ssm.put_parameter(Name=f"{prefix}/apps/{appid}/kind", Value="official_account", Type="String")
ssm.put_parameter(Name=f"{prefix}/apps/{appid}/callback_token", Value=callback_token, Type="SecureString")

state = {}
lock = threading.Condition()


class TimingProxy(BaseHTTPRequestHandler):
    """Relays each request to `upstream` (moto or the emulator) and adds the time it took to
    state["round_trips"]."""
    upstream = None
    protocol_version = "HTTP/1.1"
    # Headers and body are written separately: without this, Nagle's algorithm and the
    # client's delayed ACK add 40 ms to each answer.
    disable_nagle_algorithm = True

    def log_message(self, *a):
        pass

    def parse_request(self):
        # From the request line on: the wait for the next request on a kept-alive connection
        # is the function's time, not the round trip's.
        self.began = time.perf_counter()
        return super().parse_request()

    def relay(self):
        import http.client
        began = self.began
        body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
        up = urllib.parse.urlsplit(self.upstream)
        conn = http.client.HTTPConnection(up.hostname, up.port, timeout=30)
        conn.connect()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        payload = resp.read()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()
        conn.close()
        with lock:
            state["round_trips"] = state.get("round_trips", 0.0) + time.perf_counter() - began
            state["calls"] = state.get("calls", 0) + 1

    do_GET = do_POST = do_PUT = do_DELETE = relay


def start_proxy(upstream):
    handler = type("Proxy", (TimingProxy,), {"upstream": upstream})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


aws_proxy, wechat_proxy = start_proxy(endpoint), start_proxy(emulator_base)

class RuntimeApi(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        if self.path != "/2018-06-01/runtime/invocation/next":
            self.send_error(404); return
        with lock:
            if state.get("served"):
                # One invocation per process: park the runtime's next poll until it is killed.
                lock.wait(timeout=30)
                try:
                    self.send_error(503)
                except OSError:
                    pass  # the runtime was killed while parked
                return
            state["served"] = True
            state["next_at"] = time.perf_counter()
        body = event.encode()
        self.send_response(200)
        self.send_header("Lambda-Runtime-Aws-Request-Id", state["request_id"])
        self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 60000))
        self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:" + os.path.basename(binary))
        self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        payload = self.rfile.read(length)
        done_at = time.perf_counter()
        # Acknowledge before telling the main thread, which kills the runtime at once.
        self.send_response(202)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")
        self.wfile.flush()
        with lock:
            state["done_at"] = done_at
            state["outcome"] = "error" if self.path.endswith("/error") else "response"
            state["payload"] = payload.decode(errors="replace")
            lock.notify_all()


def outcome(st):
    """`response`/`error`, with the HTTP status for an API Gateway answer."""
    try:
        status = json.loads(st["payload"]).get("statusCode")
    except (ValueError, AttributeError):
        status = None
    return st["outcome"] + (f" (HTTP {status})" if status else "")

results = []
for i in range(runs):
    with lock:
        state.clear()
        state["request_id"] = str(uuid.uuid4())
    # A fresh Runtime API per run: a late request of the previous (killed) process can then
    # never be taken for this run's first /next.
    server = ThreadingHTTPServer(("127.0.0.1", 0), RuntimeApi)
    server.daemon_threads, server.block_on_close = True, False
    threading.Thread(target=server.serve_forever, daemon=True).start()
    api = f"127.0.0.1:{server.server_address[1]}"
    # As on Lambda: no machine-wide CA bundle (this machine names one in SSL_CERT_FILE).
    env = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    env = dict(env, AWS_LAMBDA_RUNTIME_API=api, AWS_LAMBDA_FUNCTION_NAME=os.path.basename(binary),
               AWS_LAMBDA_FUNCTION_MEMORY_SIZE="128", AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
               AWS_LAMBDA_LOG_STREAM_NAME="bench", AWS_LAMBDA_LOG_GROUP_NAME="bench",
               WXPUSH_TABLE=table, WXPUSH_SSM_PREFIX=prefix, WECHAT_API_BASE=wechat_proxy,
               AWS_ENDPOINT_URL=aws_proxy)
    start = time.perf_counter()
    if binary.startswith("python:"):
        # The Python peer: a handler module under awslambdaric, as the python3.x runtime runs it.
        cmd, cwd = [sys.executable, "-m", "awslambdaric", binary[len("python:"):]], os.path.join(os.path.dirname(__file__), "..", "bench")
    else:
        cmd, cwd = [binary], None
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=open(os.environ.get("BENCH_LOG", os.devnull), "ab"))
    with lock:
        lock.wait_for(lambda: "done_at" in state, timeout=30)
    hwm_kb = None
    try:
        for line in open(f"/proc/{proc.pid}/status"):
            if line.startswith("VmHWM:"):
                hwm_kb = int(line.split()[1])
    except FileNotFoundError:
        pass
    proc.kill(); proc.wait(timeout=10)
    with lock:
        lock.notify_all()
    server.shutdown()
    server.server_close()
    with lock:
        if "done_at" not in state:
            sys.exit(f"run {i}: no answer through the Runtime API within 30 s")
        results.append({
            "run": i + 1,
            "init_ms": (state["next_at"] - start) * 1000,
            "first_response_ms": (state["done_at"] - start) * 1000,
            "peak_rss_mib": (hwm_kb or 0) / 1024,
            "round_trips_ms": state.get("round_trips", 0.0) * 1000,
            "calls": state.get("calls", 0),
            "outcome": outcome(state),
            "payload": state["payload"][:200],
        })
print(json.dumps(results))
