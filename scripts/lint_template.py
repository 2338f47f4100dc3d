"""Offline lint of a SAM template: expand it with the SAM translator, then
run cfn-lint on the CloudFormation it expands to.

cfn-lint on the SAM template itself (and `sam validate --lint`) misses most
errors inside AWS::Serverless::* resources; on the expanded template every
property is a plain CloudFormation property cfn-lint knows the schema of.

Beyond cfn-lint, the product's guardrails are checked (`guardrail_problems`):
what a first real deployment needs, from the connector's exact policy to an
alarm on every dead-letter queue.

Usage:
  lint_template.py TEMPLATE [--expanded OUT.json] [--samconfig FILE]
                   [--starter STARTER_TEMPLATE]
      lint (and check FILE's parameter_overrides, and that the starter's
      template is TEMPLATE for an inline bot); exit 1 on any finding
  lint_template.py TEMPLATE --self-test             break TEMPLATE in known
      ways and exit 1 unless every broken copy is rejected (so the check
      above cannot silently stop checking)
  lint_template.py TEMPLATE --policies REQUESTS_ARN REPLIES_ARN
      print the connector's and the function's IAM policies as JSON, with
      the queues' ARNs filled in (for tests that enforce them)

Needs no AWS account or network: the local CodeUri is replaced by an s3://
URI (the translator would otherwise want it uploaded) and AWS managed policy
names resolve from the table aws-sam-translator bundles, not from IAM.
"""

import argparse
import copy
import json
import sys
import tomllib

import boto3
from cfnlint.api import ManualArgs, lint
from samcli.yamlhelper import yaml_parse
from samtranslator.metrics.metrics import DummyMetricsPublisher, Metrics
from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

# Regions linted: resource types and runtimes must exist in each.
REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-1"]

# Pseudo parameters the translator may need to resolve.
PSEUDO_PARAMETERS = {
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::StackName": "xmpp-lambda",
    "AWS::StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/xmpp-lambda/1",
    "AWS::URLSuffix": "amazonaws.com",
}



def managed_policies():
    """AWS managed policy names to ARNs, for SAM's `Policies: [Name]`, from
    the table aws-sam-translator bundles instead of asking IAM."""
    try:
        from samtranslator.internal.managed_policies import get_bundled_managed_policy_map

        bundled = get_bundled_managed_policy_map("aws")
    except ImportError:
        bundled = None
    return bundled or {
        name: f"arn:aws:iam::aws:policy/service-role/{name}"
        for name in ["AWSLambdaBasicExecutionRole", "AWSLambdaSQSQueueExecutionRole"]
    }


def with_s3_code(template):
    """A copy whose local CodeUri/ContentUri point at a placeholder S3 object,
    as `sam package` would leave them."""
    template = copy.deepcopy(template)
    for resource in (template.get("Resources") or {}).values():
        props = resource.get("Properties") if isinstance(resource, dict) else None
        if not isinstance(props, dict):
            continue
        for key in ("CodeUri", "ContentUri"):
            if isinstance(props.get(key), str) and not props[key].startswith("s3://"):
                props[key] = "s3://xmpp-lambda-artifacts/offline-lint.zip"
    return template


def expand(template):
    """The CloudFormation the SAM transform turns `template` into."""
    # A session only names the region; nothing here calls AWS.
    session = boto3.session.Session(region_name=PSEUDO_PARAMETERS["AWS::Region"])
    metrics = Metrics("ServerlessTransform", DummyMetricsPublisher())
    translator = Translator(managed_policies(), Parser(), boto_session=session, metrics=metrics)
    try:
        return translator.translate(with_s3_code(template), parameter_values=dict(PSEUDO_PARAMETERS))
    finally:
        # Drops the transform's metrics (it warns about unsent ones otherwise).
        metrics.publish()


def timeout_problems(template):
    """The derived timeouts must hold for every ComponentPostTimeout a user
    can pick: the function outlives the bot, stays within Lambda's 900 s,
    and the request queue hides a message for at least 6 times as long
    (Lambda's rule for SQS event sources), within SQS's 12 hours."""
    problems = []
    allowed = template["Parameters"]["ComponentPostTimeout"]["AllowedValues"]
    rows = template.get("Mappings", {}).get("Timeouts", {})
    for bot_timeout in allowed:
        row = rows.get(str(bot_timeout))
        if row is None:
            problems.append(f"Timeouts mapping: no row for ComponentPostTimeout={bot_timeout}")
            continue
        function, visibility = row.get("Function", 0), row.get("RequestVisibility", 0)
        if not int(bot_timeout) < function <= 900:
            problems.append(f"Timeouts[{bot_timeout}]: Function={function} must be above the bot timeout and at most 900")
        if not 6 * function <= visibility <= 43200:
            problems.append(f"Timeouts[{bot_timeout}]: RequestVisibility={visibility} must be 6 x Function ({6 * function}) to 43200")
    return problems


def samconfig_problems(template, samconfig_path):
    """Every parameter_overrides entry of samconfig.toml names a template
    parameter and a value it accepts."""
    with open(samconfig_path, "rb") as file:
        config = tomllib.load(file)
    parameters = template.get("Parameters", {})
    problems = []
    for env_name, env in config.items():
        if not isinstance(env, dict):
            continue
        for command, section in env.items():
            overrides = section.get("parameters", {}).get("parameter_overrides", [])
            if isinstance(overrides, str):
                overrides = overrides.split()
            for entry in overrides:
                name, _, value = entry.partition("=")
                where = f"{samconfig_path} [{env_name}.{command}] {name}"
                spec = parameters.get(name)
                if spec is None:
                    problems.append(f"{where}: no such template parameter")
                    continue
                allowed = [str(v) for v in spec.get("AllowedValues", [])]
                if allowed and value not in allowed:
                    problems.append(f"{where}={value}: not one of {allowed}")
                if spec.get("Type") == "Number":
                    if not value.lstrip("-").isdigit():
                        problems.append(f"{where}={value}: not a number")
                    elif not spec.get("MinValue", int(value)) <= int(value) <= spec.get("MaxValue", int(value)):
                        problems.append(f"{where}={value}: out of range")
    return problems


# What the connector's code calls (connector/src/sqs, connector/src/sigv4.rs,
# connector/src/check), as IAM actions: SendMessageBatch and
# DeleteMessageBatch are authorised as SendMessage and DeleteMessage.
CONNECTOR_CALLS = {
    "sqs:SendMessage",
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "lambda:InvokeFunctionUrl",
    "lambda:InvokeFunction",
}

# The condition each Lambda action of the connector's policy must carry, so
# the policy cannot invoke the function other than through its IAM-auth URL.
LAMBDA_CONDITIONS = {
    "lambda:InvokeFunctionUrl": {"StringEquals": {"lambda:FunctionUrlAuthType": "AWS_IAM"}},
    "lambda:InvokeFunction": {"Bool": {"lambda:InvokedViaFunctionUrl": "true"}},
}

# SQS's largest message (1 MiB): a reply envelope repeats its request.
SQS_MAX_MESSAGE_BYTES = 1048576

# A Function URL's invoke modes, as the function reads them too
# (FUNCTION_URL_INVOKE_MODE).
INVOKE_MODES = ["BUFFERED", "RESPONSE_STREAM"]


def as_list(value):
    return value if isinstance(value, list) else [value]


def resolve(template, value):
    """A value with Fn::FindInMap on literal keys looked up."""
    if isinstance(value, dict) and "Fn::FindInMap" in value:
        name, first, second = value["Fn::FindInMap"]
        if isinstance(first, str) and isinstance(second, str):
            return template.get("Mappings", {}).get(name, {}).get(first, {}).get(second)
    return value


def refers_to(value, logical_id):
    """Whether `value` mentions the resource or parameter `logical_id`."""
    return logical_id in json.dumps(value)


def guardrail_problems(template):
    """What a first real deployment needs and cfn-lint cannot know: the
    connector's policy exactly what it calls, retries bounded and answered,
    reply envelopes that always fit, logs that cost less than the
    invocations, an alarm on every dead letter, schedules that push once
    and record their failures, and the architecture fixed at build time."""
    problems = []
    parameters = template.get("Parameters", {})
    resources = template.get("Resources", {})
    function = resources.get("BotFunction", {}).get("Properties", {})

    def need(ok, text):
        if not ok:
            problems.append(f"guardrail: {text}")

    need(
        parameters.get("MaxReceiveCount", {}).get("MinValue", 0) >= 2,
        "MaxReceiveCount must be at least 2 (MinValue), so a request gets a retry",
    )
    concurrency = parameters.get("MaximumConcurrency", {})
    need(
        2 <= concurrency.get("MinValue", 0) and concurrency.get("MaxValue", 10**6) <= 1000,
        "MaximumConcurrency must be a parameter from 2 to 1000 (the SQS event source's range)",
    )
    events = function.get("Events", {})
    sqs_events = [e.get("Properties", {}) for e in events.values() if e.get("Type") == "SQS"]
    need(
        sqs_events
        and all(e.get("ScalingConfig", {}).get("MaximumConcurrency") == {"Ref": "MaximumConcurrency"} for e in sqs_events),
        "the SQS event's ScalingConfig.MaximumConcurrency must be the MaximumConcurrency parameter",
    )
    environment = function.get("Environment", {}).get("Variables", {})
    need(
        environment.get("MAX_RECEIVE_COUNT") == {"Ref": "MaxReceiveCount"},
        "the function needs MAX_RECEIVE_COUNT = MaxReceiveCount to answer a request's last delivery",
    )
    invoke_mode = parameters.get("FunctionUrlInvokeMode", {})
    need(
        invoke_mode.get("AllowedValues") == INVOKE_MODES and invoke_mode.get("Default") == "BUFFERED",
        f"FunctionUrlInvokeMode must be a parameter of {INVOKE_MODES}, BUFFERED by default",
    )
    need(
        function.get("FunctionUrlConfig", {}).get("InvokeMode") == {"Ref": "FunctionUrlInvokeMode"},
        "the Function URL's InvokeMode must be the FunctionUrlInvokeMode parameter",
    )
    need(
        environment.get("FUNCTION_URL_INVOKE_MODE") == {"Ref": "FunctionUrlInvokeMode"},
        "the function needs FUNCTION_URL_INVOKE_MODE = FunctionUrlInvokeMode (Lambda reads a streamed response only from a URL that streams)",
    )
    logging = function.get("LoggingConfig", {})
    need(logging.get("LogFormat") == "JSON", "LoggingConfig.LogFormat must be JSON (log levels need it)")
    need(logging.get("SystemLogLevel") == "WARN", "LoggingConfig.SystemLogLevel must be WARN")
    need(
        logging.get("ApplicationLogLevel") == {"Ref": "LogLevel"} and "LogLevel" in parameters,
        "LoggingConfig.ApplicationLogLevel must be the LogLevel parameter",
    )
    need("Architecture" not in parameters, "the architecture must not be a parameter (sam deploy could then ship a binary of the other one)")
    architectures = function.get("Architectures")
    need(
        isinstance(architectures, list) and len(architectures) == 1 and architectures[0] in ("x86_64", "arm64"),
        "Architectures must be one literal architecture, the one sam build compiles for",
    )

    queues = {name: r for name, r in resources.items() if r.get("Type") == "AWS::SQS::Queue"}
    dead_letter_queues = set()
    for name, queue in queues.items():
        props = queue.get("Properties", {})
        need(props.get("SqsManagedSseEnabled") is True, f"{name} must be encrypted (SqsManagedSseEnabled)")
        redrive = props.get("RedrivePolicy")
        if redrive:
            target = redrive.get("deadLetterTargetArn", {}).get("Fn::GetAtt", [None])[0]
            dead_letter_queues.add(target)
            need(
                redrive.get("maxReceiveCount") == {"Ref": "MaxReceiveCount"},
                f"{name}'s maxReceiveCount must be the MaxReceiveCount parameter",
            )
    envelope_queues = {name for name, q in queues.items() if q.get("Properties", {}).get("RedrivePolicy")} | dead_letter_queues
    for name in sorted(n for n in envelope_queues if n):
        size = resolve(template, queues.get(name, {}).get("Properties", {}).get("MaximumMessageSize"))
        need(size == SQS_MAX_MESSAGE_BYTES, f"{name} must take SQS's largest message ({SQS_MAX_MESSAGE_BYTES} bytes), got {size}")
    reply = queues.get("ReplyQueue", {}).get("Properties", {})
    need(
        reply.get("ContentBasedDeduplication") == {"Fn::If": ["IsFifo", True, {"Ref": "AWS::NoValue"}]},
        "a FIFO ReplyQueue must deduplicate by content (pushes from elsewhere need no deduplication id)",
    )

    topic = resources.get("AlarmTopic", {})
    need(
        topic.get("Condition") == "HasAlarmEmail"
        and {"Protocol": "email", "Endpoint": {"Ref": "AlarmEmail"}} in topic.get("Properties", {}).get("Subscription", []),
        "AlarmTopic must exist with AlarmEmail and subscribe it",
    )
    for name in ("AlarmEmail", "AlarmTopicArn"):
        need(
            parameters.get(name, {}).get("Default") == "" and "AllowedPattern" in parameters.get(name, {}),
            f"{name} must be an optional, checked parameter",
        )
    alarms = [r for r in resources.values() if r.get("Type") == "AWS::CloudWatch::Alarm"]
    watched = dead_letter_queues | ({"ScheduleFailureQueue"} if "ScheduleFailureQueue" in queues else set())
    for name in sorted(n for n in watched if n):
        on_queue = [
            a for a in alarms
            if any(refers_to(d.get("Value"), name) for d in a.get("Properties", {}).get("Dimensions", []))
        ]
        need(on_queue, f"{name} needs an alarm (a message there is one nobody was answered for)")
        for alarm in on_queue:
            actions = alarm.get("Properties", {}).get("AlarmActions", [])
            need(
                refers_to(actions, "AlarmTopic") and refers_to(actions, "AlarmTopicArn"),
                f"the alarm on {name} must notify the AlarmTopic and AlarmTopicArn",
            )
            need(
                alarm.get("Condition") == queues[name].get("Condition"),
                f"the alarm on {name} must exist exactly when the queue does",
            )

    statements = as_list(resources.get("ConnectorPolicy", {}).get("Properties", {}).get("PolicyDocument", {}).get("Statement", []))
    granted = {action for s in statements for action in as_list(s.get("Action", []))}
    need(granted == CONNECTOR_CALLS, f"ConnectorPolicy must allow exactly {sorted(CONNECTOR_CALLS)}, it allows {sorted(granted)}")
    for statement in statements:
        for action in as_list(statement.get("Action", [])):
            if action in LAMBDA_CONDITIONS:
                need(
                    as_list(statement.get("Action")) == [action] and statement.get("Condition") == LAMBDA_CONDITIONS[action],
                    f"ConnectorPolicy's {action} must stand alone with the condition {LAMBDA_CONDITIONS[action]}",
                )

    schedule = resources.get("BotSchedule")
    if schedule:
        target = schedule.get("Properties", {}).get("Target", {})
        need(
            "<aws.scheduler.scheduled-time>" in json.dumps(target.get("Input")),
            "the schedule's input must carry <aws.scheduler.scheduled-time> (pushes once per scheduled time)",
        )
        need(
            refers_to(target.get("DeadLetterConfig", {}).get("Arn"), "ScheduleFailureQueue"),
            "the schedule needs a dead-letter queue (runs Scheduler could not deliver)",
        )
        invoke_configs = [
            r for r in resources.values()
            if r.get("Type") == "AWS::Lambda::EventInvokeConfig"
            and refers_to(r.get("Properties", {}).get("FunctionName"), "BotFunction")
        ]
        need(
            any(refers_to(r["Properties"].get("DestinationConfig", {}).get("OnFailure"), "ScheduleFailureQueue") for r in invoke_configs),
            "scheduled runs that fail every retry need Lambda's on-failure destination",
        )
    return problems


def findings(template):
    """Everything wrong with `template`, as lines; empty when it is clean."""
    invariants = timeout_problems(template) + guardrail_problems(template)
    if invariants:
        return invariants
    try:
        expanded = expand(template)
    except InvalidDocumentException as error:
        return [f"SAM transform: {cause.message}" for cause in error.causes]
    matches = lint(json.dumps(expanded), config=ManualArgs(regions=REGIONS))
    return [f"cfn-lint {match.rule.id}: {match}" for match in matches]


# The starter's template is the main one for a bot of its own: the
# built-in bot's settings are gone (the starter's code is the bot), and the
# function is built from the starter's crate. It may add parameters,
# environment variables and resources of its own; everything else must be
# the same, so a fix to the main template cannot miss the starter.
BUILTIN_BOT_PARAMETERS = ("Bot", "ComponentPostUrl")
BUILTIN_BOT_ENVIRONMENT = ("BOT", "COMPONENT_POST_URL")
BUILTIN_BOT_RULES = ("ProxyBotNeedsUrl",)
BUILTIN_BOT_CONDITIONS = ("BotIsAuto",)
# Where the code is and what it is called: the starter's own.
FUNCTION_OWN_KEYS = ("CodeUri", "Description")


def starter_problems(main, starter):
    """How `starter` differs from `main` beyond what a bot of its own needs."""
    problems = []
    expected = copy.deepcopy(main)
    for name in BUILTIN_BOT_PARAMETERS:
        expected.get("Parameters", {}).pop(name, None)
    for name in BUILTIN_BOT_RULES:
        expected.get("Rules", {}).pop(name, None)
    for name in BUILTIN_BOT_CONDITIONS:
        expected.get("Conditions", {}).pop(name, None)
    for section in ("Mappings", "Conditions", "Rules", "Outputs"):
        if expected.get(section) != starter.get(section):
            problems.append(f"starter: {section} differ from the main template's")
    for name, spec in expected.get("Parameters", {}).items():
        if starter.get("Parameters", {}).get(name) != spec:
            problems.append(f"starter: parameter {name} differs from the main template's (or is missing)")
    for name in BUILTIN_BOT_PARAMETERS:
        if name in starter.get("Parameters", {}):
            problems.append(f"starter: parameter {name} is the built-in bot's")
    for name, resource in expected.get("Resources", {}).items():
        other = starter.get("Resources", {}).get(name)
        if other is None:
            problems.append(f"starter: resource {name} is missing")
            continue
        if name != "BotFunction":
            if other != resource:
                problems.append(f"starter: resource {name} differs from the main template's")
            continue
        want, got = copy.deepcopy(resource), copy.deepcopy(other)
        for side in (want, got):
            side.get("Metadata", {}).get("BuildProperties", {}).pop("Binary", None)
            props = side.get("Properties", {})
            for key in FUNCTION_OWN_KEYS:
                props.pop(key, None)
        want_env = want["Properties"].get("Environment", {}).pop("Variables", {})
        got_env = got["Properties"].get("Environment", {}).pop("Variables", {})
        if want != got:
            problems.append("starter: BotFunction differs from the main template's beyond its code and environment")
        for key, value in want_env.items():
            if key in BUILTIN_BOT_ENVIRONMENT:
                if key in got_env:
                    problems.append(f"starter: BotFunction sets {key}, the built-in bot's setting")
            elif got_env.get(key) != value:
                problems.append(f"starter: BotFunction's {key} differs from the main template's")
    return problems


def connector_and_function_policies(template, requests_arn, replies_arn):
    """The connector's and the function's IAM policies as deployed with the
    defaults (own reply queue, no schedule), the queues' ARNs filled in and
    Lambda resources named by placeholders."""
    arns = {
        "RequestQueue": requests_arn,
        "ReplyQueue": replies_arn,
        "BotFunction": "arn:aws:lambda:us-east-1:123456789012:function:bot",
        "BotFunctionLogGroup": "arn:aws:logs:us-east-1:123456789012:log-group:bot",
        "ScheduleFailureQueue": "arn:aws:sqs:us-east-1:123456789012:schedule-failures",
    }
    conditions = {"OwnReplyQueue": True, "HasSchedule": False}

    def fill(value):
        if isinstance(value, list):
            return [v for v in (fill(v) for v in value) if v is not None]
        if not isinstance(value, dict):
            return value
        if "Fn::GetAtt" in value:
            return arns[value["Fn::GetAtt"][0]]
        if "Fn::If" in value:
            name, yes, no = value["Fn::If"]
            return fill(yes if conditions[name] else no)
        if value == {"Ref": "AWS::NoValue"}:
            return None
        return {key: fill(v) for key, v in value.items()}

    resources = template["Resources"]
    connector = fill(resources["ConnectorPolicy"]["Properties"]["PolicyDocument"])
    function = fill(resources["BotFunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"])
    return {"connector": connector, "function": function}


def function_properties(template):
    return template["Resources"]["BotFunction"]["Properties"]


def set_path(*path, value):
    """A mutation setting template[path...] to value."""

    def mutate(template):
        node = template
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return mutate


def function_prop(*path, value):
    return set_path("Resources", "BotFunction", "Properties", *path, value=value)


# Each breaks the template the way a hand edit could; each must be caught.
BREAKAGES = {
    "SQS event BatchSize of the wrong type": function_prop(
        "Events", "Requests", "Properties", "BatchSize", value="ten"
    ),
    "SQS event FunctionResponseTypes misspelt": function_prop(
        "Events", "Requests", "Properties", "FunctionResponseTypes", value=["ReportBatchFailures"]
    ),
    "SQS event Queue from an attribute that does not exist": function_prop(
        "Events", "Requests", "Properties", "Queue", value={"Fn::GetAtt": ["RequestQueue", "Url"]}
    ),
    "function Role from a resource that does not exist": function_prop(
        "Role", value={"Fn::GetAtt": ["FunctionRole", "Arn"]}
    ),
    "environment variable from an unknown parameter": function_prop(
        "Environment", "Variables", "REPLY_QUEUE_URL", value={"Ref": "ReplyQueueUrl"}
    ),
    "unknown runtime": function_prop("Runtime", value="provided.al2024"),
    "Function URL AuthType misspelt": function_prop("FunctionUrlConfig", "AuthType", value="IAM"),
    "Function URL InvokeMode fixed, not the parameter": function_prop(
        "FunctionUrlConfig", "InvokeMode", value="RESPONSE_STREAM"
    ),
    "the function not told the URL's invoke mode": lambda t: function_properties(t)["Environment"][
        "Variables"
    ].pop("FUNCTION_URL_INVOKE_MODE"),
    "an invoke mode Lambda does not know": set_path(
        "Parameters", "FunctionUrlInvokeMode", "AllowedValues", value=["BUFFERED", "STREAM"]
    ),
    "streaming by default": set_path("Parameters", "FunctionUrlInvokeMode", "Default", value="RESPONSE_STREAM"),
    "memory size out of range": function_prop("MemorySize", value=64),
    "request visibility under 6 x the function timeout": set_path(
        "Mappings", "Timeouts", "30", "RequestVisibility", value=120
    ),
    "a bot timeout without its mapping row": set_path(
        "Parameters", "ComponentPostTimeout", "AllowedValues", value=[30, 25]
    ),
    "MaxReceiveCount allowed down to 1": set_path("Parameters", "MaxReceiveCount", "MinValue", value=1),
    "MaximumConcurrency under the event source's minimum": set_path(
        "Parameters", "MaximumConcurrency", "MinValue", value=1
    ),
    "no MaximumConcurrency on the SQS event": function_prop(
        "Events", "Requests", "Properties", "ScalingConfig", value={}
    ),
    "MAX_RECEIVE_COUNT not given to the function": function_prop(
        "Environment", "Variables", "MAX_RECEIVE_COUNT", value=""
    ),
    "Lambda's own log lines at INFO": function_prop("LoggingConfig", "SystemLogLevel", value="INFO"),
    "application log level fixed, not the parameter": function_prop(
        "LoggingConfig", "ApplicationLogLevel", value="INFO"
    ),
    "architecture as a parameter again": function_prop("Architectures", value=[{"Ref": "LogLevel"}]),
    "a queue smaller than SQS's 1 MiB": set_path(
        "Resources", "RequestQueue", "Properties", "MaximumMessageSize", value=262144
    ),
    "a dead-letter queue smaller than SQS's 1 MiB": set_path(
        "Resources", "ReplyDeadLetterQueue", "Properties", "MaximumMessageSize", value=262144
    ),
    "an unencrypted queue": set_path(
        "Resources", "RequestDeadLetterQueue", "Properties", "SqsManagedSseEnabled", value=False
    ),
    "a FIFO reply queue without content-based deduplication": set_path(
        "Resources", "ReplyQueue", "Properties", "ContentBasedDeduplication", value=False
    ),
    "a dead-letter queue without an alarm": lambda t: t["Resources"].pop("ReplyDeadLetterAlarm"),
    "an alarm topic that mails nobody": set_path(
        "Resources", "AlarmTopic", "Properties", "Subscription", value=[]
    ),
    "an alarm email that must be given": set_path("Parameters", "AlarmEmail", "Default", value="ops@example.com"),
    "an alarm that tells nobody": set_path(
        "Resources", "RequestDeadLetterAlarm", "Properties", "AlarmActions", value=[]
    ),
    "connector policy with a call the connector never makes": set_path(
        "Resources", "ConnectorPolicy", "Properties", "PolicyDocument", "Statement", 1, "Action",
        value=["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"],
    ),
    "connector policy without a call the connector makes": set_path(
        "Resources", "ConnectorPolicy", "Properties", "PolicyDocument", "Statement", 1, "Action",
        value=["sqs:ReceiveMessage"],
    ),
    "InvokeFunction without its Function URL condition": lambda t: t["Resources"]["ConnectorPolicy"][
        "Properties"
    ]["PolicyDocument"]["Statement"][3].pop("Condition"),
    "schedule input without the scheduled time": set_path(
        "Resources", "BotSchedule", "Properties", "Target", "Input", value='{"schedule": "x"}'
    ),
    "schedule without a dead-letter queue": lambda t: t["Resources"]["BotSchedule"]["Properties"][
        "Target"
    ].pop("DeadLetterConfig"),
    "schedule without Lambda's on-failure destination": lambda t: t["Resources"].pop(
        "BotScheduleInvokeConfig"
    ),
    "connector policy on an attribute that does not exist": set_path(
        "Resources",
        "ConnectorPolicy",
        "Properties",
        "PolicyDocument",
        "Statement",
        2,
        "Resource",
        value={"Fn::GetAtt": ["BotFunction", "FunctionUrl"]},
    ),
}


# Each makes the starter drift from the main template in a way that matters.
STARTER_BREAKAGES = {
    "starter queue of another size": set_path(
        "Resources", "RequestQueue", "Properties", "MaximumMessageSize", value=262144
    ),
    "starter without the schedule": lambda t: t["Resources"].pop("BotSchedule"),
    "starter with another default retry count": set_path(
        "Parameters", "MaxReceiveCount", "Default", value=3
    ),
    "starter function with another memory size": set_path(
        "Resources", "BotFunction", "Properties", "MemorySize", value=256
    ),
    "starter without MAX_RECEIVE_COUNT": lambda t: t["Resources"]["BotFunction"]["Properties"][
        "Environment"
    ]["Variables"].pop("MAX_RECEIVE_COUNT"),
    "starter without FUNCTION_URL_INVOKE_MODE": lambda t: t["Resources"]["BotFunction"]["Properties"][
        "Environment"
    ]["Variables"].pop("FUNCTION_URL_INVOKE_MODE"),
    "starter with its Function URL's invoke mode fixed": set_path(
        "Resources", "BotFunction", "Properties", "FunctionUrlConfig", "InvokeMode", value="BUFFERED"
    ),
    "starter with the built-in bot's BOT": set_path(
        "Resources", "BotFunction", "Properties", "Environment", "Variables", "BOT", value="echo"
    ),
}


def self_test(template, starter=None):
    """Exit status: 0 when the template is clean and every breakage is caught."""
    failed = False
    clean = findings(template)
    if clean:
        print("self-test: the unbroken template is not clean:", *clean, sep="\n  ")
        failed = True
    for name, mutate in BREAKAGES.items():
        broken = copy.deepcopy(template)
        mutate(broken)
        caught = findings(broken)
        if caught:
            print(f"self-test: caught {name}: {caught[0][:150]}")
        else:
            print(f"self-test: NOT caught: {name}")
            failed = True
    if starter is not None:
        clean = starter_problems(template, starter)
        if clean:
            print("self-test: the starter is not the main template's:", *clean, sep="\n  ")
            failed = True
        for name, mutate in STARTER_BREAKAGES.items():
            broken = copy.deepcopy(starter)
            mutate(broken)
            caught = starter_problems(template, broken)
            if caught:
                print(f"self-test: caught {name}: {caught[0][:150]}")
            else:
                print(f"self-test: NOT caught: {name}")
                failed = True
    return 1 if failed else 0


def load(path):
    with open(path, encoding="utf-8") as file:
        return yaml_parse(file.read())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("template")
    parser.add_argument("--expanded", help="also write the expanded CloudFormation here")
    parser.add_argument("--self-test", action="store_true")
    parser.add_argument("--samconfig", help="also check this samconfig.toml's parameter_overrides")
    parser.add_argument("--starter", help="also check that this template is TEMPLATE for a bot of its own")
    parser.add_argument("--policies", nargs=2, metavar=("REQUESTS_ARN", "REPLIES_ARN"))
    args = parser.parse_args()
    template = load(args.template)
    starter = load(args.starter) if args.starter else None
    if args.policies:
        print(json.dumps(connector_and_function_policies(template, *args.policies)))
        return 0
    if args.self_test:
        return self_test(template, starter)
    if args.expanded:
        with open(args.expanded, "w", encoding="utf-8") as file:
            json.dump(expand(template), file, indent=2, sort_keys=True)
    problems = findings(template)
    if args.samconfig:
        problems += samconfig_problems(template, args.samconfig)
    if starter is not None:
        problems += starter_problems(template, starter)
    for line in problems:
        print(line)
    if problems:
        return 1
    print(f"{args.template}: SAM transform and cfn-lint ({', '.join(REGIONS)}): clean")
    return 0


if __name__ == "__main__":
    sys.exit(main())
