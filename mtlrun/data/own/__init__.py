"""Your own data: tables, image folders, array folders and your own Python function."""
