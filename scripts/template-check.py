#!/usr/bin/env python3
"""Deploy checks of a SAM template, offline: `template-check.py [--step STEP] [TEMPLATE]`.

cfn-lint (1.54 and later) validates SAM resources against schemas only and no longer runs the
SAM translator, so a misspelled event property, an unknown event type or a bad policy template
argument pass it. The steps, in order (all of them unless --step names one):

  sam-validate  `sam validate`: the SAM translator, run by the SAM CLI, with only a region set
                (no credentials, no instance metadata, no telemetry, no version check).
  translated    the same translation through aws-sam-translator's Python API (local CodeUris
                replaced by placeholder s3:// URIs, as `sam validate` does), then cfn-lint on the
                CloudFormation it produces: what CloudFormation will really be given.
  source        cfn-lint on the template itself, with the cfn-lint-serverless rules
                (`-a cfn_lint_serverless.rules`). Findings listed in IGNORED are dropped, and an
                IGNORED entry that matches nothing fails the check (it is stale: remove it).
  own           checks no linter makes: every function logs to a log group of this template with
                a retention (what WS1004 cannot see through LoggingConfig); every metric of the
                `Trials` namespace in an alarm or the dashboard is one shared/src/metrics.rs
                emits, with its dimensions; the dashboard body is JSON.

Exit status 0 when every step passes, 1 otherwise. Standard library plus the tools from
requirements-dev.txt (run it with .venv/bin/python).
"""
import argparse
import copy
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
METRICS_RS = os.path.join(ROOT, "shared", "src", "metrics.rs")
REGION = "us-east-1"

# Every cfn-lint finding we accept, in one place: (rule, resource or "*") -> why.
IGNORED = {
    ("WS1004", "*"): (
        "false positive: each function sends its logs to its own log group through "
        "LoggingConfig.LogGroup, which the rule does not read; the 'own' step checks instead that "
        "every function has one, with a retention"
    ),
    ("ES1007", "ExpireFunction"): (
        "a failed run carries no data to keep: the next scheduled run resumes from the table "
        "(MaximumRetryAttempts 0). Failures page through the function's Errors alarm and "
        "ExpireJobUnhealthyAlarm"
    ),
    ("ES1007", "PurgeFunction"): (
        "as for ExpireFunction: the next run catches up; Errors and PurgeJobUnhealthyAlarm page"
    ),
    ("ES4000", "ExpireFunction"): (
        "a schedule tick carries no data, so a DLQ of undelivered ticks would hold nothing to "
        "replay; a job that stops being invoked pages through ExpireJobStalledAlarm"
    ),
    ("ES4000", "PurgeFunction"): (
        "as for ExpireFunction: nothing to replay; PurgeJobStalledAlarm pages when runs stop"
    ),
    ("ES6000", "PublishDeadLetterQueue"): (
        "the queue is itself the terminal dead-letter destination of the stream mapping "
        "(PublishDeadLetterAlarm pages on any message); nothing consumes it, so there is nothing "
        "to redrive from"
    ),
}


class Failed(Exception):
    pass


# ----------------------------------------------------------------------------- loading


def load_sam(path):
    """The template as SAM CLI reads it (short-form intrinsics become their long forms)."""
    from samcli.yamlhelper import yaml_parse

    with open(path) as f:
        return yaml_parse(f.read())


def with_placeholder_uris(template):
    """A copy whose local code and definition locations are s3:// placeholders, as
    `sam validate` makes them: the translator accepts only S3 locations."""
    t = copy.deepcopy(template)

    def placeholder(props, key, logical):
        value = props.get(key, ".")
        if isinstance(value, str) and not value.startswith("s3://"):
            props[key] = f"s3://placeholder-bucket/{logical}"

    fn_globals = t.get("Globals", {}).get("Function")
    if isinstance(fn_globals, dict) and "CodeUri" in fn_globals:
        placeholder(fn_globals, "CodeUri", "globals")
    for logical, resource in t.get("Resources", {}).items():
        kind = resource.get("Type")
        props = resource.setdefault("Properties", {})
        if kind == "AWS::Serverless::Function" and props.get("PackageType", "Zip") == "Zip":
            placeholder(props, "CodeUri", logical)
        elif kind == "AWS::Serverless::LayerVersion":
            placeholder(props, "ContentUri", logical)
        elif kind in ("AWS::Serverless::Api", "AWS::Serverless::HttpApi", "AWS::Serverless::StateMachine"):
            if "DefinitionUri" in props:
                placeholder(props, "DefinitionUri", logical)
    return t


def translate(template):
    """CloudFormation from the SAM template, through the translator's Python API, offline."""
    import boto3
    from samtranslator.internal.managed_policies import get_bundled_managed_policy_map
    from samtranslator.parser.parser import Parser
    from samtranslator.public.exceptions import InvalidDocumentException
    from samtranslator.translator.translator import Translator

    def managed_policies():
        # Names of AWS managed policies resolve from the translator's bundled list; a name it
        # does not know would need IAM, which an offline check must not call.
        return get_bundled_managed_policy_map("aws") or {}

    translator = Translator(
        managed_policy_map=None,
        sam_parser=Parser(),
        plugins=[],
        boto_session=boto3.session.Session(region_name=REGION),
    )
    try:
        return translator.translate(
            sam_template=with_placeholder_uris(template),
            parameter_values={},
            get_managed_policy_map=managed_policies,
        )
    except InvalidDocumentException as e:
        causes = "\n".join(f"  - {c.message}" for c in e.causes)
        raise Failed(f"the SAM translator rejects the template:\n{causes}") from e


# ----------------------------------------------------------------------------- the steps


def offline_env():
    """Region only: no credentials, no instance metadata, no telemetry, no SAM version check."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    config_dir = tempfile.mkdtemp(prefix="sam-config-")
    # SAM CLI asks PyPI for a newer version at most weekly, after the last check it records.
    with open(os.path.join(config_dir, "metadata.json"), "w") as f:
        json.dump({"telemetryEnabled": False, "lastVersionCheck": 4102444800.0}, f)
    env.update(
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        SAM_CLI_TELEMETRY="0",
        __SAM_CLI_APP_DIR=config_dir,
    )
    return env


def step_sam_validate(path):
    out = subprocess.run(
        [os.path.join(BIN, "sam"), "validate", "--template-file", path],
        env=offline_env(),
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise Failed(f"sam validate failed:\n{(out.stdout + out.stderr).strip()}")


def cfn_lint(args):
    out = subprocess.run(
        [os.path.join(BIN, "cfn-lint"), "--format", "json", *args],
        env=offline_env(),
        capture_output=True,
        text=True,
    )
    # cfn-lint exits 0 (clean), 2 (errors), 4 (warnings), 6 (both), 8 (informational).
    if out.returncode not in (0, 2, 4, 6, 8) or not out.stdout.strip():
        raise Failed(f"cfn-lint did not run ({out.returncode}):\n{out.stderr.strip()}")
    return json.loads(out.stdout)


def describe(finding):
    where = finding["Location"]["Start"]["LineNumber"]
    path = "/".join(str(p) for p in finding["Location"]["Path"])
    return f"{finding['Rule']['Id']} {finding['Message']} (line {where}, {path})"


def step_translated(path):
    cfn = translate(load_sam(path))
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "translated.json")
        with open(out, "w") as f:
            json.dump(cfn, f, indent=1)
        findings = cfn_lint(["--", out])
    if findings:
        raise Failed(
            "cfn-lint on the translated CloudFormation:\n"
            + "\n".join(f"  {describe(x)}" for x in findings)
        )


def resource_of(finding):
    p = finding["Location"]["Path"]
    return p[1] if len(p) > 1 and p[0] == "Resources" else None


def step_source(path):
    findings = cfn_lint(["-a", "cfn_lint_serverless.rules", "--", path])
    used = set()
    left = []
    for x in findings:
        rule, resource = x["Rule"]["Id"], resource_of(x)
        key = next((k for k in ((rule, resource), (rule, "*")) if k in IGNORED), None)
        if key:
            used.add(key)
        else:
            left.append(x)
    stale = [k for k in IGNORED if k not in used]
    problems = [f"  {describe(x)}" for x in left]
    problems += [f"  IGNORED has {rule} for {res}, which no longer fires: remove it" for rule, res in stale]
    if problems:
        raise Failed("cfn-lint with the serverless rules on the template:\n" + "\n".join(problems))


def emitted_metrics():
    """Metric and dimension names that shared/src/metrics.rs defines (its `pub const`s)."""
    with open(METRICS_RS) as f:
        src = f.read()

    def consts(module):
        body = re.search(r"pub mod " + module + r" \{(.*?)\n\}", src, re.S)
        if not body:
            raise Failed(f"{METRICS_RS}: no `pub mod {module}`")
        return set(re.findall(r'pub const [A-Z0-9_]+: &str = "([^"]+)";', body.group(1)))

    namespace = re.search(r'pub const NAMESPACE: &str = "([^"]+)";', src)
    if not namespace:
        raise Failed(f"{METRICS_RS}: no NAMESPACE")
    return namespace.group(1), consts("name"), consts("dimension")


def dashboard_bodies(template):
    for logical, r in template.get("Resources", {}).items():
        if r.get("Type") != "AWS::CloudWatch::Dashboard":
            continue
        body = r["Properties"]["DashboardBody"]
        if isinstance(body, dict) and "Fn::Sub" in body:
            body = body["Fn::Sub"]
            body = body[0] if isinstance(body, list) else body
        if not isinstance(body, str):
            raise Failed(f"{logical}: DashboardBody is neither a string nor a !Sub of one")
        # What CloudFormation substitutes: ${Name} (a value), ${!Literal} (a literal ${Literal}).
        body = re.sub(r"\$\{!", "${", re.sub(r"\$\{[A-Za-z0-9:.]+\}", "X", body))
        try:
            yield logical, json.loads(body)
        except json.JSONDecodeError as e:
            raise Failed(f"{logical}: the dashboard body is not JSON: {e}") from e


def step_own(path):
    template = load_sam(path)
    resources = template.get("Resources", {})
    problems = []

    for logical, r in resources.items():
        if r.get("Type") != "AWS::Serverless::Function":
            continue
        group = r.get("Properties", {}).get("LoggingConfig", {}).get("LogGroup")
        ref = group.get("Ref") if isinstance(group, dict) else None
        target = resources.get(ref, {})
        if target.get("Type") != "AWS::Logs::LogGroup" or "RetentionInDays" not in target.get("Properties", {}):
            problems.append(f"  {logical}: LoggingConfig.LogGroup must !Ref a log group of this template with RetentionInDays")

    namespace, names, dims = emitted_metrics()

    def check(where, metric, dimensions):
        if metric not in names:
            problems.append(f"  {where}: {namespace} metric {metric!r} is not emitted by shared/src/metrics.rs")
        for d in dimensions:
            if d not in dims:
                problems.append(f"  {where}: dimension {d!r} of {metric!r} is not one metrics.rs emits")

    for logical, r in resources.items():
        if r.get("Type") == "AWS::CloudWatch::Alarm":
            p = r["Properties"]
            if p.get("Namespace") == namespace:
                check(logical, p.get("MetricName"), [d["Name"] for d in p.get("Dimensions", [])])
    for logical, body in dashboard_bodies(template):
        for widget in body.get("widgets", []):
            for row in widget.get("properties", {}).get("metrics", []):
                if row and row[0] == namespace:
                    fields = [x for x in row[1:] if isinstance(x, str)]
                    check(f"{logical} {widget['properties'].get('title')!r}", fields[0], fields[1::2])
                elif row and isinstance(row[0], dict) and "expression" in row[0]:
                    expr = row[0]["expression"]
                    for schema in re.findall(r"\{" + namespace + r",([^}]*)\}", expr):
                        for metric in re.findall(r'MetricName="([^"]+)"', expr):
                            check(f"{logical} {widget['properties'].get('title')!r}", metric, [d.strip() for d in schema.split(",") if d.strip()])
    if problems:
        raise Failed("template checks:\n" + "\n".join(problems))


STEPS = {
    "sam-validate": step_sam_validate,
    "translated": step_translated,
    "source": step_source,
    "own": step_own,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("template", nargs="?", default=os.path.join(ROOT, "template.yaml"))
    parser.add_argument("--step", choices=sorted(STEPS), help="run only this step")
    args = parser.parse_args()
    steps = [args.step] if args.step else list(STEPS)
    failed = False
    for name in steps:
        try:
            STEPS[name](args.template)
            print(f"template-check {name}: ok")
        except Failed as e:
            failed = True
            print(f"template-check {name}: FAILED\n{e}", file=sys.stderr)
    if not args.step and not failed:
        print("template-check: accepted cfn-lint findings (scripts/template-check.py IGNORED):")
        for (rule, resource), why in IGNORED.items():
            print(f"  {rule} {resource}: {why}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
