"""Each command's body, one module a command (or a pair that share their helpers): it imports
what the command needs at its top. The parser (batchgen.cli.main) never imports these; the
:class:`batchgen.cli.body.Body` a command's parser names loads the one that runs."""
