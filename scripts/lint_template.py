"""Offline lint of a SAM template: expand it with the SAM translator, then
run cfn-lint on the CloudFormation it expands to.

cfn-lint on the SAM template itself (and `sam validate --lint`) misses most
errors inside AWS::Serverless::* resources; on the expanded template every
property is a plain CloudFormation property cfn-lint knows the schema of.

Usage:
  lint_template.py TEMPLATE [--expanded OUT.json] [--samconfig FILE]
      lint (and check FILE's parameter_overrides); exit 1 on any finding
  lint_template.py TEMPLATE --self-test             break TEMPLATE in known
      ways and exit 1 unless every broken copy is rejected (so the check
      above cannot silently stop checking)

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


def findings(template):
    """Everything wrong with `template`, as lines; empty when it is clean."""
    invariants = timeout_problems(template)
    if invariants:
        return invariants
    try:
        expanded = expand(template)
    except InvalidDocumentException as error:
        return [f"SAM transform: {cause.message}" for cause in error.causes]
    matches = lint(json.dumps(expanded), config=ManualArgs(regions=REGIONS))
    return [f"cfn-lint {match.rule.id}: {match}" for match in matches]


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
    "memory size out of range": function_prop("MemorySize", value=64),
    "request visibility under 6 x the function timeout": set_path(
        "Mappings", "Timeouts", "30", "RequestVisibility", value=120
    ),
    "a bot timeout without its mapping row": set_path(
        "Parameters", "ComponentPostTimeout", "AllowedValues", value=[30, 25]
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


def self_test(template):
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
    return 1 if failed else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("template")
    parser.add_argument("--expanded", help="also write the expanded CloudFormation here")
    parser.add_argument("--self-test", action="store_true")
    parser.add_argument("--samconfig", help="also check this samconfig.toml's parameter_overrides")
    args = parser.parse_args()
    with open(args.template, encoding="utf-8") as file:
        template = yaml_parse(file.read())
    if args.self_test:
        return self_test(template)
    if args.expanded:
        with open(args.expanded, "w", encoding="utf-8") as file:
            json.dump(expand(template), file, indent=2, sort_keys=True)
    problems = findings(template)
    if args.samconfig:
        problems += samconfig_problems(template, args.samconfig)
    for line in problems:
        print(line)
    if problems:
        return 1
    print(f"{args.template}: SAM transform and cfn-lint ({', '.join(REGIONS)}): clean")
    return 0


if __name__ == "__main__":
    sys.exit(main())
