"""Scenario 1: a 200 whose body says `Invalid session` fails the flow and queues a retry.

The status code says success, the body says otherwise: response code 2 ("fail the process
flow and queue it to retry") with the message `Invalid session`, written to the run log.
Every other answer is left to the connector's default classifier.
"""


def handle(data):
    response = data["response"]
    if response is not None and response["status"] == 200 \
            and "Invalid session" in response["body"]:
        data["response_code"] = 2
        data["message"] = "Invalid session"
    return data
