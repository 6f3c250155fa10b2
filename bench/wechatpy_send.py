"""The Python peer of the send-path CPU benchmark: wechatpy sends the same template message to
the same WeChat emulator, with an access token it is given (no token call), one at a time.
Prints the process CPU (user + system) per send in microseconds, after a warm-up.

usage: wechatpy_send.py API_BASE APPID TOKEN OPENID SENDS
"""
import sys
import time

from wechatpy import WeChatClient
from wechatpy.session.memorystorage import MemoryStorage


def main():
    base, appid, token, openid, sends = sys.argv[1:6]
    sends = int(sends)
    client = WeChatClient(appid, "unused", access_token=token, session=MemoryStorage())
    client.API_BASE_URL = base.rstrip("/") + "/cgi-bin/"
    data = {"thing1": {"value": "你好"}}

    def send():
        result = client.message.send_template(openid, "T1", data)
        assert result["errcode"] == 0, result

    for _ in range(100):
        send()
    start = time.process_time()
    for _ in range(sends):
        send()
    print(f"{(time.process_time() - start) / sends * 1e6:.1f}")


if __name__ == "__main__":
    main()
