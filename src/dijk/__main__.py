from dijk.cli.main import main

main()
