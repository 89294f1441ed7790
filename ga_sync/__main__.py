from ga_sync.cli import main

main()
