#!/usr/bin/env python3
"""A reconnecting databridge streaming client (protocol databridge.v1).

    pip install websocket-client        # Debian/Ubuntu: apt install python3-websocket
    python3 stream_client.py ENDPOINT API_KEY [SYMBOL ...]

ENDPOINT is your tier's WebSocket URL, e.g. wss://pro.fx.example.com/v1/stream
(`databridge standalone` prints one per tier). The client prints one line per
tick on stdout and everything else on stderr; it reconnects with backoff,
follows tier_changed to the new endpoint, and stops on errors that retrying
cannot fix. See docs/protocol.md.
"""
import json
import random
import struct
import sys
import time

import websocket  # websocket-client

NO_RETRY = {4001: "unauthorized", 4003: "suspended"}  # fix the cause first
RECONNECT_NOW = {1001, 4010}  # server restart, tier change: no backoff needed


def stream_url(endpoint):
    """Accept host[:port], a base URL or the full .../v1/stream URL."""
    if "://" not in endpoint:
        endpoint = "wss://" + endpoint
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/stream") else endpoint + "/v1/stream"


def log(*args):
    print("#", *args, file=sys.stderr, flush=True)


class Fatal(Exception):
    """The server closed the session for a reason retrying cannot fix."""


def run_session(url, api_key, symbols):
    """Run one session until the server closes it.

    Returns (url to reconnect to, close code)."""
    # The server pings every 30 s and sends usage every 10 s, so 60 s of
    # silence means the connection is dead. websocket-client answers pings.
    ws = websocket.create_connection(
        url, header=["Authorization: Bearer " + api_key], timeout=60)
    frame_seq = 0  # seq of the last market_data frame
    try:
        while True:
            opcode, data = ws.recv_data()
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else 1005
                if code in NO_RETRY:
                    raise Fatal(f"closed {code} ({NO_RETRY[code]})")
                return url, code
            if opcode != websocket.ABNF.OPCODE_TEXT:
                continue
            msg = json.loads(data)
            kind = msg.get("type")
            if kind == "welcome":
                log(f"session {msg['session_id']}: {msg['company']} / {msg['user']} on tier "
                    f"{msg['tier']} ({msg['update_interval_ms']} ms, {msg['data_quality']})")
                # Subscriptions belong to the session: subscribe on every connect.
                ws.send(json.dumps({"type": "subscribe", "id": "sub-1", "symbols": symbols}))
            elif kind == "subscribed":
                for r in msg.get("refused") or []:
                    hint = f"; tier {r['tier']} has it" if r.get("tier") else ""
                    log(f"refused {r['symbol']}: {r['code']}{hint}")
                log("subscribed:", " ".join(msg.get("subscriptions") or []) or "nothing")
            elif kind in ("snapshot", "market_data"):
                if kind == "market_data":
                    if frame_seq and msg["seq"] != frame_seq + 1:
                        log(f"lost frames {frame_seq + 1}..{msg['seq'] - 1}")
                    frame_seq = msg["seq"]
                for t in msg["ticks"]:
                    print(f"{t['time']} {t['symbol']} bid={t['bid']} ask={t['ask']} seq={t['seq']}",
                          flush=True)
            elif kind == "usage":
                quota = msg.get("daily_data_points")
                log(f"usage: {msg['data_points']} data points today"
                    f"{f' of {quota}' if quota is not None else ''}, {msg['api_calls']} API calls")
            elif kind == "error":
                log(f"error {msg['code']}{' (fatal)' if msg.get('fatal') else ''}: {msg['message']}")
                if msg["code"] == "tier_changed" and msg.get("endpoint"):
                    url = stream_url(msg["endpoint"])
            # pong and message types this client does not know: ignore them.
    finally:
        ws.shutdown()


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    url, api_key = stream_url(sys.argv[1]), sys.argv[2]
    symbols = sys.argv[3:] or ["EURUSD"]
    delay = 1.0
    while True:
        started, code = time.monotonic(), None
        try:
            url, code = run_session(url, api_key, symbols)
            log(f"closed {code}")
        except Fatal as e:
            sys.exit(f"databridge: {e}")
        except (websocket.WebSocketException, OSError) as e:
            log(f"connection lost: {e!r}")
        if time.monotonic() - started > 60:
            delay = 1.0  # the session was healthy: start backing off afresh
        wait = 0 if code in RECONNECT_NOW else random.uniform(0, delay)
        delay = min(delay * 2, 60.0)
        log(f"reconnecting in {wait:.1f} s")
        time.sleep(wait)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
