"""The Python peer's Lambda: a callback URL verification with wechatpy under awslambdaric,
doing what wxpush's callback does for the same event (read the app's callback token from
SSM, check the signature and the timestamp, echo `echostr`). Run by
scripts/bench_cold_start.py in mode `python-callback`:

  python -m awslambdaric wechatpy_lambda.handler
"""
import os
import time

import boto3
from wechatpy.utils import check_signature

ssm = boto3.client("ssm")
prefix = os.environ["WXPUSH_SSM_PREFIX"]


def handler(event, context):
    appid = event["pathParameters"]["appid"]
    q = event["queryStringParameters"]
    token = ssm.get_parameter(Name=f"{prefix}/apps/{appid}/callback_token", WithDecryption=True)["Parameter"]["Value"]
    check_signature(token, q["signature"], q["timestamp"], q["nonce"])
    if abs(time.time() - int(q["timestamp"])) > 300:
        return {"statusCode": 401, "body": "stale"}
    return {"statusCode": 200, "headers": {"content-type": "text/plain"}, "body": q["echostr"]}
