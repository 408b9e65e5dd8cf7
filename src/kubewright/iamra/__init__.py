"""IAM Roles Anywhere credential injector (mutating webhook)."""
