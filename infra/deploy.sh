#!/usr/bin/env bash
# Deploy one environment of Duff analytics to AWS: `make deploy` (see docs/operations.md).
#
#   DUFF_ENV=dev                 environment name (2-12 lower-case letters/digits); the stack
#                                is duff-$DUFF_ENV unless DUFF_STACK_NAME says otherwise
#   AWS_PROFILE / AWS_REGION     which account and region (the usual AWS CLI settings)
#   DUFF_ARTIFACT_BUCKET         bucket for code and templates (default
#                                duff-artifacts-<account>-<region>, created when missing)
#   DUFF_ALARM_EMAIL             address subscribed to the alarm topic (optional)
#   DUFF_DEPLOY_PARAMETERS       extra Key=Value template parameters, space separated
#                                (e.g. "IngestMemorySize=3008 DbtSchedule=rate(1 hour)")
#   DUFF_SKIP_PACKAGE=1          reuse the zips in dist/ instead of running `make package`
#   DUFF_DIST_DIR=dist           where the zips are (and the dbt project zip is written)
#
# Steps: check the CLI and credentials; build the two Lambda zips (make package) and a zip
# of the committed repository for CodeBuild (git archive HEAD); upload all three under
# content-addressed keys (an unchanged artifact is not uploaded again and does not update its
# function); `aws cloudformation deploy`; print the stack outputs.
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
  echo "deploy: $*" >&2
  exit 2
}

ENV_NAME="${DUFF_ENV:-dev}"
STACK="${DUFF_STACK_NAME:-duff-${ENV_NAME}}"
[[ "$ENV_NAME" =~ ^[a-z][a-z0-9]{1,11}$ ]] \
  || die "DUFF_ENV=$ENV_NAME: use 2 to 12 lower-case letters and digits, starting with a letter"

command -v aws >/dev/null 2>&1 || die "the AWS CLI is not installed (it is not part of the
  project's lock on purpose). Install it (https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html),
  configure credentials (aws configure sso, or AWS_PROFILE), then run make deploy again."

REGION="${AWS_REGION:-${AWS_DEFAULT_REGION:-$(aws configure get region 2>/dev/null || true)}}"
[ -n "$REGION" ] || die "no AWS region: set AWS_REGION (or a region in your AWS profile)"
export AWS_REGION="$REGION" AWS_DEFAULT_REGION="$REGION"

STS_ERR="$(mktemp)"
trap 'rm -f "$STS_ERR"' EXIT
if ! ACCOUNT="$(aws sts get-caller-identity --query Account --output text 2>"$STS_ERR")"; then
  die "no usable AWS credentials (aws sts get-caller-identity: $(tr '\n' ' ' <"$STS_ERR")).
  Log in (aws sso login, or export AWS_PROFILE / AWS_ACCESS_KEY_ID) and run make deploy again."
fi
[[ "$ACCOUNT" =~ ^[0-9]{12}$ ]] || die "unexpected account id from sts: $ACCOUNT"
BUCKET="${DUFF_ARTIFACT_BUCKET:-duff-artifacts-${ACCOUNT}-${REGION}}"
echo "deploy: stack $STACK (environment $ENV_NAME) to account $ACCOUNT in $REGION"

# -- 1. artifacts ------------------------------------------------------------------------------
DIST="${DUFF_DIST_DIR:-dist}"
mkdir -p "$DIST"
if [ "${DUFF_SKIP_PACKAGE:-0}" != 1 ]; then
  make package
fi
for zip in "$DIST/duff-ingest.zip" "$DIST/duff-api.zip"; do
  [ -f "$zip" ] || die "$zip is missing: run make package"
done
if [ -n "$(git status --porcelain --untracked-files=no -- . 2>/dev/null)" ]; then
  echo "deploy: warning: uncommitted changes are NOT in the dbt project zip (git archive HEAD)" >&2
fi
COMMIT="$(git rev-parse HEAD)"
git archive --format=zip -o "$DIST/dbt-project.zip" HEAD

sha() { sha256sum "$1" | cut -c1-16; }
PREFIX="duff/${ENV_NAME}"
INGEST_KEY="${PREFIX}/duff-ingest-$(sha "$DIST/duff-ingest.zip").zip"
API_KEY="${PREFIX}/duff-api-$(sha "$DIST/duff-api.zip").zip"
DBT_KEY="${PREFIX}/dbt-project-${COMMIT:0:12}-$(sha "$DIST/dbt-project.zip").zip"

# -- 2. the artifact bucket --------------------------------------------------------------------
if ! aws s3api head-bucket --bucket "$BUCKET" >/dev/null 2>&1; then
  echo "deploy: creating artifact bucket $BUCKET"
  if [ "$REGION" = us-east-1 ]; then
    aws s3api create-bucket --bucket "$BUCKET" >/dev/null
  else
    aws s3api create-bucket --bucket "$BUCKET" \
      --create-bucket-configuration "LocationConstraint=$REGION" >/dev/null
  fi
  aws s3api put-public-access-block --bucket "$BUCKET" --public-access-block-configuration \
    BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true
  aws s3api put-bucket-encryption --bucket "$BUCKET" --server-side-encryption-configuration \
    '{"Rules":[{"ApplyServerSideEncryptionByDefault":{"SSEAlgorithm":"AES256"}}]}'
  aws s3api put-bucket-versioning --bucket "$BUCKET" --versioning-configuration Status=Enabled
  aws s3api put-bucket-policy --bucket "$BUCKET" --policy "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Sid\":\"TlsOnly\",\"Effect\":\"Deny\",\"Principal\":\"*\",\"Action\":\"s3:*\",\"Resource\":[\"arn:aws:s3:::${BUCKET}\",\"arn:aws:s3:::${BUCKET}/*\"],\"Condition\":{\"Bool\":{\"aws:SecureTransport\":\"false\"}}}]}"
fi

upload() { # file key: upload unless that exact key (content-addressed) is already there
  if aws s3api head-object --bucket "$BUCKET" --key "$2" >/dev/null 2>&1; then
    echo "deploy: s3://$BUCKET/$2 already uploaded"
  else
    aws s3 cp --only-show-errors "$1" "s3://$BUCKET/$2"
    echo "deploy: uploaded s3://$BUCKET/$2"
  fi
}
upload "$DIST/duff-ingest.zip" "$INGEST_KEY"
upload "$DIST/duff-api.zip" "$API_KEY"
upload "$DIST/dbt-project.zip" "$DBT_KEY"

# -- 3. the stack ------------------------------------------------------------------------------
PARAMS=(
  "EnvironmentName=$ENV_NAME"
  "ArtifactBucket=$BUCKET"
  "IngestCodeKey=$INGEST_KEY"
  "ApiCodeKey=$API_KEY"
  "DbtSourceKey=$DBT_KEY"
)
[ -z "${DUFF_ALARM_EMAIL:-}" ] || PARAMS+=("AlarmEmail=$DUFF_ALARM_EMAIL")
if [ -n "${DUFF_DEPLOY_PARAMETERS:-}" ]; then
  read -r -a EXTRA <<<"$DUFF_DEPLOY_PARAMETERS"
  PARAMS+=("${EXTRA[@]}")
fi

aws cloudformation deploy \
  --template-file infra/template.yaml \
  --stack-name "$STACK" \
  --s3-bucket "$BUCKET" --s3-prefix "${PREFIX}/templates" \
  --capabilities CAPABILITY_NAMED_IAM \
  --no-fail-on-empty-changeset \
  --tags project=duff "environment=$ENV_NAME" "commit=$COMMIT" \
  --parameter-overrides "${PARAMS[@]}"

aws cloudformation describe-stacks --stack-name "$STACK" \
  --query "Stacks[0].Outputs[].[OutputKey,OutputValue]" --output table
echo "deploy: done. The API key: aws secretsmanager get-secret-value --secret-id duff/${ENV_NAME}/api-key --query SecretString --output text"
