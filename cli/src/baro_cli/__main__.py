from baro_cli.main import main

main()
