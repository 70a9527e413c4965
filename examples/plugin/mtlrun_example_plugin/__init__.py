"""An example mtlrun plugin (docs/plugins.md): each module holds one component."""
