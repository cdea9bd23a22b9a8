"""Node autoscaling through Cluster API (issue 14): add and remove GPU nodes with the extender's own eyes."""
