terraform {
  # 1.6: `terraform test`, import blocks, and the validation/precondition features used here.
  required_version = ">= 1.6"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 6.x: per-resource `region`, `data.aws_region.region`; every argument used here exists in 6.0.
      version = "~> 6.0"
    }
  }
}
