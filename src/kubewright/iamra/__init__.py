"""IAM Roles Anywhere credential injector (mutating webhook).

Decisions (pure: no I/O, no clock, no globals; most of the tests live here):
  constants   every public contract string (annotations, names, env, metrics) of the spec
  arns        ARN and region shapes shared by the config and the validation
  config      the chart->webhook config contract (`config.yaml` + `KUBEWRIGHT_IAMRA_*` env)
  pod         checked reads of the raw Pod dict (`MalformedReview` for what is not a Pod)
  validate    spec 3.2: every problem of an annotated pod, collected
  effective   spec 3.3: effective settings and the injection hash
  sidecar     the helper container and the certificate volume
  env         the app environment and its warnings
  patch       the copy's `add`-only diff (RFC 6902)
  mutate      the pipeline: request -> skip / deny / inject
  outcome     what the pipeline answers
  trust_anchor  the workload CA out of its Secret and the AWS CLI command

Wiring: `review` (the decision as the runtime's admission verdict, failure policy on errors) and `cli`.
"""
