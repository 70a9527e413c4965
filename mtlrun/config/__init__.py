"""The configuration: the structured schema, the generated per-choice options and their generator,
the inert-setting checks and what a resume may change. Free of torch, so start-up stays fast."""
