from twisted.application.service import ServiceMaker

helios = ServiceMaker("helios", "helios.tap", "HeliosDB Nano: SQL with branches and time travel over REST", "helios")
