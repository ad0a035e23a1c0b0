#!/usr/bin/env python3
"""A minimal databridge client: connect with an API key, subscribe, print what arrives.

    python3 docs/examples/client.py ws://127.0.0.1:8080/v1/stream dbk_... EURUSD GBPUSD

Needs websocket-client (Debian: apt-get install python3-websocket; elsewhere: pip install websocket-client).
"""
import json
import sys

import websocket


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    url, key, symbols = sys.argv[1], sys.argv[2], sys.argv[3:]
    ws = websocket.create_connection(url, header=["Authorization: Bearer " + key])
    welcome = json.loads(ws.recv())
    if welcome["type"] == "error":
        sys.exit("refused: %s: %s" % (welcome["code"], welcome["message"]))
    print("connected to the %s tier as %s/%s, %s ms updates, %s quality"
          % (welcome["tier"], welcome["tenant"], welcome["user"], welcome["update_interval_ms"], welcome["data_quality"]))
    ws.send(json.dumps({"type": "subscribe", "id": "1", "symbols": symbols}))
    while True:
        msg = json.loads(ws.recv())
        if msg["type"] == "subscribed":
            print("subscribed:", ", ".join(msg["accepted"]) or "nothing")
            for r in msg["refused"]:
                print("  refused %s: %s" % (r["symbol"], r["message"]))
        elif msg["type"] in ("snapshot", "market_data"):
            for t in msg["ticks"]:
                print("%-7s %s bid %-10s ask %-10s seq %d" % (t["symbol"], t["time"], t["bid"], t["ask"], t["seq"]))
        elif msg["type"] == "error":
            print("error %s: %s" % (msg["code"], msg["message"]))
            if msg["fatal"]:
                break
        elif msg["type"] == "usage":
            print("usage: %d data points, %d API calls today" % (msg["data_points"], msg["api_calls"]))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
