"""The Pulumi program: both databases, their roles and grants, and the post-provision migrations."""
