provider "aws" {
  region = var.region

  default_tags {
    tags = merge(var.tags, {
      Project   = "wattstream"
      ManagedBy = "terraform"
      Stack     = var.name_prefix
    })
  }
}

# Second region for the S3 cross-region replica (used only when var.enable_replication).
# A provider block cannot take `count`, so it is always configured; it makes no API call
# unless a resource uses it.
provider "aws" {
  alias  = "replica"
  region = var.replica_region

  default_tags {
    tags = merge(var.tags, {
      Project   = "wattstream"
      ManagedBy = "terraform"
      Stack     = var.name_prefix
    })
  }
}
