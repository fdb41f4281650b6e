from ognet_video.cli import main

main()
